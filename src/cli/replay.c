/* The parameters a dream records in its comment, written and read back:
 * "deepdream VERSION: from=SOURCE key=value ...", values percent-encoded
 * where they could hold a space (paths), so the pairs split on spaces. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_percent_encode(const char *s, char *out, size_t size) {
    size_t n = 0;
    for (; *s && n + 4 <= size; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '%' || c >= 0x7f) n += (size_t)snprintf(out + n, size - n, "%%%02X", c);
        else out[n++] = (char)c;
    }
    if (size) out[n < size ? n : size - 1] = '\0';
}

static int hex_digit(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* In place: "%XX" -> the byte; 0 for a malformed escape or an encoded NUL. */
static int percent_decode(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '%') {
            *w++ = *r;
            continue;
        }
        const int hi = hex_digit(r[1]), lo = hi < 0 ? -1 : hex_digit(r[2]);
        if (lo < 0 || (hi | lo) == 0) return 0;
        *w++ = (char)(hi * 16 + lo);
        r += 2;
    }
    *w = '\0';
    return 1;
}

void cli_replay_free(cli_replay *r) {
    free(r->text);
    memset(r, 0, sizeof *r);
}

int cli_replay_read(const char *path, uint64_t max_pixels, cli_replay *r) {
    memset(r, 0, sizeof *r);
    const char *name = strcmp(path, "-") ? cli_quote(path) : "standard input";
    unsigned char *data = NULL;
    size_t size = 0;
    dd_image *image = NULL;
    if (!cli_read_image(path, max_pixels, NULL, &data, &size)) return 0;
    const dd_status st = dd_image_load_memory(data, size, max_pixels, &image);
    free(data);
    if (st) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, name, cli_quote(dd_last_error()));
        return 0;
    }
    const char *comment = dd_image_comment(image);
    const char *colon = comment && !strncmp(comment, "deepdream ", 10) ? strstr(comment, ": from=") : NULL;
    const char *why = !colon ? "no parameters recorded: not a deepdream output"
                      : strstr(colon, " passed through unchanged") ? "passed through unchanged, never dreamed"
                      : !strstr(colon, " model=") ? "its recorded parameters are cut short"
                      : NULL;
    if (!why && !(r->text = strdup(comment))) why = "out of memory";
    dd_image_free(image);
    if (why) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, name, why);
        return 0;
    }
    char *text = r->text, *vend = strchr(text + 10, ':');
    *vend = '\0';
    r->version = text + 10;
    for (char *p = vend + 2; *p;) {
        char *end = strchr(p, ' ');
        if (end) *end = '\0';
        char *eq = strchr(p, '=');
        if (!eq || eq == p || r->n == CLI_REPLAY_MAX || !percent_decode(eq + 1)) {
            fprintf(stderr, "%s: %s: recorded parameter '%s' is malformed\n", cli_prog, name, cli_quote(p));
            cli_replay_free(r);
            return 0;
        }
        *eq = '\0';
        r->key[r->n] = p, r->value[r->n++] = eq + 1;
        p = end ? end + 1 : p + strlen(p);
    }
    return 1;
}
