/* What the video code shares: a YUV4MPEG2 stream's format, parsed from its
 * header, and the limits on what a header may hold. */
#ifndef DD_VIDEO_H
#define DD_VIDEO_H

#include <stddef.h>

#include "deepdream.h"

/* A header or a FRAME line longer than this is DD_ERR_LIMIT: ffmpeg's are
 * under 100 bytes, the cap only stops a stream of garbage early. */
#define Y4M_MAX_LINE_BYTES 65536

typedef enum y4m_chroma { Y4M_420JPEG, Y4M_420MPEG2, Y4M_420PALDV, Y4M_422, Y4M_444, Y4M_MONO } y4m_chroma;

typedef struct y4m_format {
    int width, height;
    y4m_chroma chroma;
    int full_range;                 /* XCOLORRANGE=FULL                     */
    int fps_num, fps_den;           /* F, 0:0 when absent                   */
    int aspect_num, aspect_den;     /* A, 0:0 when absent or unknown        */
    char interlace;                 /* I: p t b m, '?' when absent          */
    char *header;                   /* the header line as read, without its
                                     * newline: a writer writes it back as
                                     * it is, X fields and all            */
    size_t header_len;
    int chroma_width, chroma_height;/* 0 for mono                           */
    /* Siting: Cb (0) and Cr (1) sample j lies at luma column
     * step_x * j + off_x[p] and row step_y * i + off_y[p]. */
    int step_x, step_y;
    double off_x[2], off_y[2];
    size_t luma_bytes, chroma_bytes, frame_bytes; /* frame_bytes: after the FRAME line */
} y4m_format;

#endif
