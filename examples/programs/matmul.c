/* Dense linear algebra kernels: matrix multiply, transpose, LU-style elimination; prints a checksum. */
#include <stdio.h>

#define N 48
static double A[N][N], B[N][N], C[N][N];

static void init(void) {
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      A[i][j] = (double)((i * 3 + j * 7) % 11) - 5.0;
      B[i][j] = (double)((i + 2 * j) % 13) / 4.0;
    }
}

static void multiply(void) {
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double s = 0.0;
      for (int k = 0; k < N; k++) s += A[i][k] * B[k][j];
      C[i][j] = s;
    }
}

static void transpose(double m[N][N]) {
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) { double t = m[i][j]; m[i][j] = m[j][i]; m[j][i] = t; }
}

static void eliminate(double m[N][N]) {
  for (int k = 0; k < N; k++) {
    double p = m[k][k];
    if (p > -1e-9 && p < 1e-9) p = 1.0;
    for (int i = k + 1; i < N; i++) {
      double f = m[i][k] / p;
      for (int j = k; j < N; j++) m[i][j] -= f * m[k][j];
    }
  }
}

int main(void) {
  init();
  multiply();
  transpose(C);
  eliminate(C);
  double trace = 0.0;
  for (int i = 0; i < N; i++) trace += C[i][i];
  printf("trace %.6f\n", trace);
  return 0;
}
