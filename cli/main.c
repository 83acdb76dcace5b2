/* main.c — the `unigen` command line. */
#include "unigen.h"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("unigen %s\n", ug_version());
        return 0;
    }
    fprintf(stderr, "usage: unigen --version\n");
    return 2;
}
