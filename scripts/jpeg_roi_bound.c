/*
 * How fast can the faces of the pipeline benchmark be decoded at best?
 *
 * libjpeg-turbo (the decoder behind cv2.imdecode) decodes each face's photo two ways:
 *   full: every pixel, as cv2.imdecode does;
 *   roi:  only what a 112x112 warp of that face reads: jpeg_crop_scanline to the face's
 *         columns, jpeg_skip_scanlines to its first row, the rows through its last, then
 *         jpeg_abort_decompress (the rest of the file is never read);
 *   skip: jpeg_skip_scanlines through the face's last row, producing no pixel: the entropy
 *         decoding that "roi" cannot avoid.
 * A baseline JPEG without restart markers cannot be entered in the middle: every Huffman
 * code before the last needed block must still be decoded, so "roi" is the least work any
 * decoder can do on these files. It bounds the speed of a per-face photo pipeline.
 *
 * Input (argv[1]): lines "path x0 y0 x1 y1", the source-pixel box a face's warp reads
 * (written by scripts/jpeg_roi_bound.py). Output: one JSON object on stdout.
 * Build: gcc -O2 scripts/jpeg_roi_bound.c -ljpeg -o target/bench/jpeg_roi_bound
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <time.h>
#include <jpeglib.h>

struct face { unsigned char *data; unsigned long len; int x0, y0, x1, y1; };

struct err { struct jpeg_error_mgr mgr; jmp_buf jump; };
static void on_error(j_common_ptr c) { longjmp(((struct err *)c->err)->jump, 1); }

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Decodes one face: mode 0 the whole photo, 1 only the face's box, 2 skips through the
 * box's last row. Returns the number of pixels produced,
 * or -1 on a decoding error. With out != NULL, the decoded rows are stored there at their
 * place in a full-size RGB picture (for the equality check). */
static long decode(const struct face *f, int mode, unsigned char *out, int *w_out, int *h_out) {
  struct jpeg_decompress_struct c;
  struct err e;
  static unsigned char row[3 * 8192];
  long pixels = 0;
  c.err = jpeg_std_error(&e.mgr);
  e.mgr.error_exit = on_error;
  if (setjmp(e.jump)) { jpeg_destroy_decompress(&c); return -1; }
  jpeg_create_decompress(&c);
  jpeg_mem_src(&c, f->data, f->len);
  jpeg_read_header(&c, TRUE);
  c.out_color_space = JCS_RGB;
  jpeg_start_decompress(&c);
  if (w_out) { *w_out = c.output_width; *h_out = c.output_height; }
  JDIMENSION xoff = 0, width = c.output_width;
  int y0 = 0, y1 = c.output_height;
  if (mode == 2) {
    jpeg_skip_scanlines(&c, f->y1);
    jpeg_abort_decompress(&c);
    jpeg_destroy_decompress(&c);
    return 0;
  }
  if (mode == 1) {
    /* One column past the box: at a crop's right edge, libjpeg-turbo's fancy upsampling
     * has no right neighbour and gives chroma a few levels off. */
    xoff = f->x0;
    width = (f->x1 < (int)c.output_width ? f->x1 + 1 : f->x1) - f->x0;
    jpeg_crop_scanline(&c, &xoff, &width);  /* widened to whole iMCU columns */
    y0 = f->y0; y1 = f->y1;
    if (y0 > 0) jpeg_skip_scanlines(&c, y0);
  }
  while ((int)c.output_scanline < y1) {
    JSAMPROW r = row;
    int y = c.output_scanline;
    jpeg_read_scanlines(&c, &r, 1);
    if (out) memcpy(out + 3 * ((size_t)y * c.image_width + xoff), row, 3 * width);
    pixels += width;
  }
  if (mode == 1) jpeg_abort_decompress(&c); else jpeg_finish_decompress(&c);
  jpeg_destroy_decompress(&c);
  return pixels;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: %s ROI_LIST [MIN_SECONDS]\n", argv[0]); return 2; }
  double min_seconds = argc > 2 ? atof(argv[2]) : 2.0;
  FILE *list = fopen(argv[1], "r");
  if (!list) { perror(argv[1]); return 1; }
  struct face faces[4096];
  int n = 0;
  char path[4096];
  while (n < 4096 && fscanf(list, "%4095s %d %d %d %d", path, &faces[n].x0, &faces[n].y0,
                            &faces[n].x1, &faces[n].y1) == 5) {
    FILE *img = fopen(path, "rb");
    if (!img) { perror(path); return 1; }
    fseek(img, 0, SEEK_END);
    faces[n].len = ftell(img);
    fseek(img, 0, SEEK_SET);
    faces[n].data = malloc(faces[n].len);
    if (fread(faces[n].data, 1, faces[n].len, img) != faces[n].len) { perror(path); return 1; }
    fclose(img);
    n++;
  }
  fclose(list);
  if (n == 0) { fprintf(stderr, "%s: no faces\n", argv[1]); return 1; }

  /* The cropped decode must give the full decode's pixels inside the box. */
  int max_diff = 0;
  long roi_pixels = 0, full_pixels = 0;
  for (int i = 0; i < n; i++) {
    int w, h;
    decode(&faces[i], 0, NULL, &w, &h);
    unsigned char *a = calloc((size_t)3 * w * h, 1), *b = calloc((size_t)3 * w * h, 1);
    full_pixels += decode(&faces[i], 0, a, NULL, NULL);
    roi_pixels += decode(&faces[i], 1, b, NULL, NULL);
    for (int y = faces[i].y0; y < faces[i].y1; y++)
      for (int x = 3 * faces[i].x0; x < 3 * faces[i].x1; x++) {
        int d = abs(a[3 * (size_t)y * w + x] - b[3 * (size_t)y * w + x]);
        if (d > max_diff) max_diff = d;
      }
    free(a); free(b);
  }

  double us[3];
  for (int mode = 0; mode < 3; mode++) {
    for (int i = 0; i < n; i++) decode(&faces[i], mode, NULL, NULL, NULL);  /* warm-up */
    long passes = 0;
    double start = now(), t;
    do {
      for (int i = 0; i < n; i++) decode(&faces[i], mode, NULL, NULL, NULL);
      passes++;
    } while ((t = now() - start) < min_seconds);
    us[mode] = t * 1e6 / (passes * (double)n);
  }
  printf("{\"faces\": %d, \"libjpeg_version\": %d, \"full_decode_us\": %.2f, "
         "\"roi_decode_us\": %.2f, \"entropy_through_box_us\": %.2f, \"roi_pixel_share\": %.4f, \"roi_max_abs_diff\": %d}\n",
         n, JPEG_LIB_VERSION, us[0], us[1], us[2], (double)roi_pixels / full_pixels, max_diff);
  return 0;
}
