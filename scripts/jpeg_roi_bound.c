/*
 * How fast can the faces of the pipeline benchmark be decoded at best, when each face
 * decodes its photo (as the Python peer does)?
 *
 * libjpeg-turbo (the system's; cv2's wheels bundle their own build of it) decodes each
 * face's photo three ways:
 *   full: every pixel, as cv2.imdecode does;
 *   roi:  only what a 112x112 warp of that face reads: jpeg_crop_scanline to the face's
 *         columns, jpeg_skip_scanlines to its first row, the rows through its last, then
 *         jpeg_abort_decompress (the rest of the file is never read);
 *   skip: through the face's last row producing no pixel but that row: the entropy
 *         decoding that "roi" cannot avoid.
 * A baseline JPEG without restart markers cannot be entered in the middle: every Huffman
 * code before the last needed block must still be decoded, so with libjpeg-turbo's entropy
 * decoder "roi" is the least work a per-face pipeline can do on such files.
 *
 * Input (argv[1]): lines "path x0 y0 x1 y1", the half-open source-pixel box a face's warp
 * reads (written by scripts/jpeg_roi_bound.py). Output: one JSON object on stdout; errors
 * name the file on stderr and exit with status 1.
 * Build: gcc -O2 scripts/jpeg_roi_bound.c -ljpeg -o target/bench/jpeg_roi_bound
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <time.h>
#include <jpeglib.h>

#ifndef LIBJPEG_TURBO_VERSION_NUMBER
#define LIBJPEG_TURBO_VERSION_NUMBER 0
#endif

#define MAX_FACES 4096

struct face { const char *path; unsigned char *data; unsigned long len; int x0, y0, x1, y1; };

struct err { struct jpeg_error_mgr mgr; jmp_buf jump; };

static void on_error(j_common_ptr c) {
  c->err->output_message(c);  /* libjpeg's own words for what went wrong, on stderr */
  longjmp(((struct err *)c->err)->jump, 1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *must_alloc(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (!p) { fprintf(stderr, "out of memory (%zu bytes)\n", n); exit(1); }
  return p;
}

/* Decodes one face: mode 0 the whole photo, 1 only the face's box, 2 skips through the
 * box's last row. Returns the number of pixels produced; exits with a message on a
 * decoding error. With out != NULL, the decoded rows are stored there at their place in
 * a full-size RGB picture (for the equality check). */
static long decode(const struct face *f, int mode, unsigned char *out, int *w_out, int *h_out) {
  struct jpeg_decompress_struct c;
  struct err e;
  static unsigned char *row;
  static size_t row_len;
  volatile long pixels = 0;  /* volatile: kept across setjmp */
  c.err = jpeg_std_error(&e.mgr);
  e.mgr.error_exit = on_error;
  if (setjmp(e.jump)) {
    jpeg_destroy_decompress(&c);
    fprintf(stderr, "%s: cannot be decoded\n", f->path);
    exit(1);
  }
  jpeg_create_decompress(&c);
  jpeg_mem_src(&c, f->data, f->len);
  jpeg_read_header(&c, TRUE);
  c.out_color_space = JCS_RGB;
  jpeg_start_decompress(&c);
  if (w_out) { *w_out = c.output_width; *h_out = c.output_height; }
  if (row_len < 3 * (size_t)c.output_width) {
    free(row);
    row_len = 3 * (size_t)c.output_width;
    row = must_alloc(row_len);
  }
  if (f->x1 > (int)c.output_width || f->y1 > (int)c.output_height) {
    fprintf(stderr, "%s: box %d,%d..%d,%d outside the %ux%u picture\n", f->path, f->x0,
            f->y0, f->x1, f->y1, c.output_width, c.output_height);
    exit(1);
  }
  JDIMENSION xoff = 0, width = c.output_width;
  int y0 = 0, y1 = c.output_height;
  if (mode == 2) {
    /* jpeg_skip_scanlines to the picture's end decodes nothing, so the last row is read. */
    if (f->y1 > 1) jpeg_skip_scanlines(&c, f->y1 - 1);
    JSAMPROW r = row;
    jpeg_read_scanlines(&c, &r, 1);
    long produced = c.output_width;
    jpeg_abort_decompress(&c);
    jpeg_destroy_decompress(&c);
    return produced;
  }
  if (mode == 1) {
    /* One column either side of the box: at a crop's edges, libjpeg-turbo's fancy
     * upsampling has no neighbour and gives chroma a few levels off. */
    int left = f->x0 > 0 ? f->x0 - 1 : 0;
    int right = f->x1 < (int)c.output_width ? f->x1 + 1 : f->x1;
    xoff = left;
    width = right - left;
    jpeg_crop_scanline(&c, &xoff, &width);  /* widened to whole iMCU columns */
    y0 = f->y0; y1 = f->y1;
    if (y0 > 0) jpeg_skip_scanlines(&c, y0);
  }
  while ((int)c.output_scanline < y1) {
    JSAMPROW r = row;
    int y = c.output_scanline;
    jpeg_read_scanlines(&c, &r, 1);
    if (out) memcpy(out + 3 * ((size_t)y * c.image_width + xoff), row, 3 * (size_t)width);
    pixels += width;
  }
  if (mode == 1) jpeg_abort_decompress(&c); else jpeg_finish_decompress(&c);
  long warnings = e.mgr.num_warnings;
  jpeg_destroy_decompress(&c);
  if (warnings) {  /* libjpeg pads truncated or corrupt data with grey and only warns */
    fprintf(stderr, "%s: corrupt or truncated JPEG data\n", f->path);
    exit(1);
  }
  return pixels;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: %s ROI_LIST [MIN_SECONDS]\n", argv[0]); return 2; }
  double min_seconds = argc > 2 ? atof(argv[2]) : 2.0;
  FILE *list = fopen(argv[1], "r");
  if (!list) { perror(argv[1]); return 1; }
  static struct face faces[MAX_FACES];
  int n = 0;
  char path[4096];
  int got;
  while ((got = fscanf(list, "%4095s %d %d %d %d", path, &faces[n].x0, &faces[n].y0,
                       &faces[n].x1, &faces[n].y1)) == 5) {
    struct face *f = &faces[n];
    if (f->x0 < 0 || f->y0 < 0 || f->x1 <= f->x0 || f->y1 <= f->y0) {
      fprintf(stderr, "%s: face %d: empty or negative box\n", argv[1], n + 1);
      return 1;
    }
    f->path = strdup(path);
    FILE *img = fopen(path, "rb");
    if (!img) { perror(path); return 1; }
    long len;
    if (fseek(img, 0, SEEK_END) != 0 || (len = ftell(img)) < 0 || fseek(img, 0, SEEK_SET) != 0) {
      perror(path);
      return 1;
    }
    f->len = len;
    f->data = must_alloc(f->len);
    if (fread(f->data, 1, f->len, img) != f->len) { perror(path); return 1; }
    fclose(img);
    if (++n == MAX_FACES) { fprintf(stderr, "%s: more than %d faces\n", argv[1], MAX_FACES); return 1; }
  }
  if (got != EOF) { fprintf(stderr, "%s: face %d: expected \"path x0 y0 x1 y1\"\n", argv[1], n + 1); return 1; }
  fclose(list);
  if (n == 0) { fprintf(stderr, "%s: no faces\n", argv[1]); return 1; }

  /* The cropped decode must give the whole decode's pixels inside the box. */
  int max_diff = 0;
  long roi_pixels = 0, full_pixels = 0, box_pixels = 0;
  for (int i = 0; i < n; i++) {
    const struct face *f = &faces[i];
    int w, h;
    decode(f, 0, NULL, &w, &h);
    unsigned char *a = must_alloc((size_t)3 * w * h), *b = must_alloc((size_t)3 * w * h);
    full_pixels += decode(f, 0, a, NULL, NULL);
    roi_pixels += decode(f, 1, b, NULL, NULL);
    box_pixels += (long)(f->x1 - f->x0) * (f->y1 - f->y0);
    for (int y = f->y0; y < f->y1; y++)
      for (int x = 3 * f->x0; x < 3 * f->x1; x++) {
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
  printf("{\"faces\": %d, \"libjpeg_turbo_version\": %d, \"full_decode_us\": %.2f, "
         "\"roi_decode_us\": %.2f, \"entropy_through_box_us\": %.2f, "
         "\"box_pixel_share\": %.4f, \"decoded_pixel_share\": %.4f, \"roi_max_abs_diff\": %d}\n",
         n, LIBJPEG_TURBO_VERSION_NUMBER, us[0], us[1], us[2],
         (double)box_pixels / full_pixels, (double)roi_pixels / full_pixels, max_diff);
  return 0;
}
