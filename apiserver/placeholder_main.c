/* Keeps build/bin/modelgate-apiserver linking while only the pure parts of
 * the apiserver (patch.c, schema.c) exist on this branch: every .c in
 * apiserver/ links into the binary, which needs a main. This main is weak,
 * so the server's real main (as-core) replaces it without a clash; delete
 * this file once that main is merged. */
#include <stdio.h>

int main(int argc, char **argv);

__attribute__((weak)) int main(int argc, char **argv)
{
    fprintf(stderr, "modelgate-apiserver: this build has no server yet (only its patch and schema code)\n");
    return 1;
}
