/* CRC-32 (table-driven) and Adler-32 over a generated buffer; prints both. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint32_t table[256];

static void make_table(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
}

static uint32_t crc32(const unsigned char *buf, size_t len) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; i++) c = table[(c ^ buf[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static uint32_t adler32(const unsigned char *buf, size_t len) {
  uint32_t a = 1, b = 0;
  for (size_t i = 0; i < len; i++) { a = (a + buf[i]) % 65521u; b = (b + a) % 65521u; }
  return (b << 16) | a;
}

int main(void) {
  static unsigned char buf[1 << 16];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)((i * 7u + (i >> 3)) ^ 0x5a);
  make_table();
  printf("crc32 %08x adler32 %08x\n", (unsigned)crc32(buf, sizeof buf), (unsigned)adler32(buf, sizeof buf));
  return 0;
}
