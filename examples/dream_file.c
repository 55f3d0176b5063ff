/* dream_file: one image (PNG, JPEG, PNM) dreamed into a PNG with deepdream's
 * public API.  Usage: dream_file INPUT OUTPUT.png
 * Exit status: 0 done, 1 a failure (one line on stderr), 2 usage. */
#include <deepdream.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    dd_model *model = NULL;
    dd_image *image = NULL;
    unsigned char *in = NULL, *out = NULL;
    size_t in_size = 0, out_size = 0;
    FILE *f = NULL;
    dd_status st;
    int rc = 1;
    if (argc != 3) {
        fprintf(stderr, "usage: %s INPUT OUTPUT.png\n", argv[0]);
        return 2;
    }
    /* The whole file in memory: the library reads no files of its own here. */
    long n = -1;
    if (!(f = fopen(argv[1], "rb")) || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || !(in = malloc((size_t)n + 1)) ||
        fread(in, 1, (size_t)n, f) != (size_t)n) {
        perror(argv[1]);
        goto done;
    }
    in_size = (size_t)n;
    fclose(f);
    f = NULL;
    dd_params params = dd_params_default();
    if ((st = dd_model_load_default(&model)) != DD_OK ||
        (st = dd_image_load_memory(in, in_size, 0, &image)) != DD_OK ||
        (st = dd_dream(model, &params, image, NULL, NULL)) != DD_OK ||
        (st = dd_image_save_memory(image, DD_FORMAT_PNG, 0, NULL, &out, &out_size)) != DD_OK) {
        fprintf(stderr, "dream_file: %s: %s: %s\n", argv[1], dd_strerror(st), dd_last_error());
        goto done;
    }
    if (!(f = fopen(argv[2], "wb")) || fwrite(out, 1, out_size, f) != out_size) {
        perror(argv[2]);
        goto done;
    }
    rc = fclose(f) == 0 ? 0 : (perror(argv[2]), 1);
    f = NULL;
done:
    if (f) fclose(f);
    free(out);
    free(in);
    dd_image_free(image);
    dd_model_free(model);
    return rc;
}
