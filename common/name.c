#include "common/name.h"

#include <string.h>

bool
name_is_valid(const char *s)
{
    size_t n;

    if (!s)
        return false;
    n = strnlen(s, NAME_MAX_LEN + 1);
    if (n == 0 || n > NAME_MAX_LEN || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}
