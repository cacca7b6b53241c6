/* SHA-256 (FIPS 180-4), used for the program-binary cache key. */
#ifndef FEWCL_SHA256_H
#define FEWCL_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct fcl_sha256 {
    uint32_t h[8];
    uint8_t block[64];
    size_t used;     /* bytes in `block` */
    uint64_t length; /* total bytes hashed */
} fcl_sha256;

void fcl_sha256_init(fcl_sha256 *s);
void fcl_sha256_update(fcl_sha256 *s, const void *data, size_t len);
void fcl_sha256_final(fcl_sha256 *s, uint8_t digest[32]);
/* One-shot: lower-case hex of the SHA-256 of `data` into out[65]. */
void fcl_sha256_hex_of(const void *data, size_t len, char out[65]);
/* Lower-case hex of a digest into out[65]. */
void fcl_sha256_hex(const uint8_t digest[32], char out[65]);

#endif
