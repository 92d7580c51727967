/* Sorting benchmark: quicksort + insertion sort on a pseudo-random array; prints a checksum. */
#include <stdio.h>
#include <stdlib.h>

static unsigned rng_state = 12345u;
static unsigned next_rand(void) { rng_state = rng_state * 1103515245u + 12345u; return (rng_state >> 16) & 0x7fff; }

static void insertion_sort(int *a, int lo, int hi) {
  for (int i = lo + 1; i <= hi; i++) {
    int v = a[i], j = i - 1;
    while (j >= lo && a[j] > v) { a[j + 1] = a[j]; j--; }
    a[j + 1] = v;
  }
}

static void quick_sort(int *a, int lo, int hi) {
  while (hi - lo > 16) {
    int pivot = a[lo + (hi - lo) / 2], i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) { int t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (j - lo < hi - i) { quick_sort(a, lo, j); lo = i; } else { quick_sort(a, i, hi); hi = j; }
  }
  insertion_sort(a, lo, hi);
}

int main(void) {
  enum { N = 5000 };
  int *a = malloc(N * sizeof *a);
  if (!a) return 1;
  for (int i = 0; i < N; i++) a[i] = (int)next_rand();
  quick_sort(a, 0, N - 1);
  unsigned long sum = 0;
  for (int i = 0; i < N; i++) {
    if (i && a[i - 1] > a[i]) { printf("unsorted at %d\n", i); return 2; }
    sum = sum * 31 + (unsigned)a[i];
  }
  printf("checksum %lu\n", sum);
  free(a);
  return 0;
}
