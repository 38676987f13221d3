/* raftfs-ctl's --json output through jansson: strings are checked UTF-8 and the output is ASCII
 * (JSON_ENSURE_ASCII), so what a script reads is valid JSON whatever bytes a path, an address
 * or a daemon's message holds. */
#include <stdlib.h>
#include <string.h>

#include "tools/raftfs-ctl/ctl.h"

json_t *ctl_json_text(const char *s)
{
    json_t *v = json_string(s);
    if (v != NULL)
        return v;
    /* Not UTF-8 (or out of memory): every byte of 0x80 and above becomes U+FFFD, the
     * replacement character, so the text stays readable and the JSON valid. */
    size_t n = strlen(s), k = 0;
    char *t = malloc(3 * n + 1);
    if (t == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x80) {
            t[k++] = s[i];
        } else {
            memcpy(t + k, "\xef\xbf\xbd", 3);
            k += 3;
        }
    }
    t[k] = '\0';
    v = json_string(t);
    free(t);
    return v;
}

int ctl_json_print(const struct ctl_opts *o, json_t *v)
{
    if (v == NULL)
        return ctl_fail(o, CTL_ERROR, "out of memory");
    int rc = json_dumpf(v, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(v);
    if (rc != 0 || putchar('\n') == EOF || fflush(stdout) != 0)
        return CTL_ERROR; /* stdout is gone: nowhere to say so but stderr */
    return CTL_OK;
}

int ctl_done(const struct ctl_opts *o, json_t *v, const char *message)
{
    if (!o->is_json) {
        json_decref(v);
        printf("%s\n", message);
        return CTL_OK;
    }
    if (v == NULL)
        v = json_object();
    ctl_json_set(&v, "message", ctl_json_text(message));
    return ctl_json_print(o, v);
}

void ctl_json_append(json_t **a, json_t *item)
{
    if (*a == NULL || item == NULL || json_array_append_new(*a, item) != 0) {
        json_decref(*a);
        json_decref(item);
        *a = NULL;
    }
}

void ctl_json_set(json_t **obj, const char *key, json_t *value)
{
    if (*obj == NULL || value == NULL || json_object_set_new(*obj, key, value) != 0) {
        json_decref(*obj);
        json_decref(value);
        *obj = NULL;
    }
}
