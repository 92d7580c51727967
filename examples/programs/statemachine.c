/* A tokenizer and a small stack-machine interpreter driven by switch statements; prints results. */
#include <stdio.h>
#include <string.h>

enum Op { PUSH, ADD, SUB, MUL, DUP, SWAP, JNZ, DEC, HALT };
struct Insn { enum Op op; int arg; };

static int run(const struct Insn *prog, int n) {
  int stack[64], sp = 0, pc = 0, steps = 0;
  while (pc < n && steps++ < 100000) {
    struct Insn in = prog[pc++];
    switch (in.op) {
      case PUSH: stack[sp++] = in.arg; break;
      case ADD: sp--; stack[sp - 1] += stack[sp]; break;
      case SUB: sp--; stack[sp - 1] -= stack[sp]; break;
      case MUL: sp--; stack[sp - 1] *= stack[sp]; break;
      case DUP: stack[sp] = stack[sp - 1]; sp++; break;
      case SWAP: { int t = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = t; break; }
      case JNZ: if (stack[sp - 1] != 0) pc = in.arg; break;
      case DEC: stack[sp - 1]--; break;
      case HALT: return sp ? stack[sp - 1] : 0;
    }
  }
  return -1;
}

static int count_tokens(const char *s, int counts[4]) {
  int state = 0, tokens = 0;
  for (; *s; s++) {
    char c = *s;
    int cls = (c >= '0' && c <= '9') ? 1 : ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) ? 2 : (c == ' ') ? 0 : 3;
    switch (state * 4 + cls) {
      case 1: case 2: case 3: tokens++; counts[cls]++; state = cls; break;
      case 4: case 8: case 12: state = 0; break;
      case 6: case 7: case 9: case 11: case 13: case 14: tokens++; counts[cls]++; state = cls; break;
      default: break;
    }
  }
  return tokens;
}

int main(void) {
  /* acc = 1; n = 10; do { acc = acc * 2 + 1 } while (--n) */
  struct Insn prog[] = {{PUSH, 1}, {PUSH, 10}, {SWAP, 0}, {PUSH, 2}, {MUL, 0}, {PUSH, 1}, {ADD, 0},
                        {SWAP, 0}, {DEC, 0}, {JNZ, 2}, {SWAP, 0}, {HALT, 0}};
  int counts[4] = {0, 0, 0, 0};
  int t = count_tokens("x1 = foo(42) + bar * 7; if (y2 > 3) return z;", counts);
  printf("vm %d tokens %d digits %d words %d puncts %d\n", run(prog, (int)(sizeof prog / sizeof prog[0])), t,
         counts[1], counts[2], counts[3]);
  return 0;
}
