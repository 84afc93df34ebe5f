/* Differential fuzzing of modelsim's request parsers: on any input, the fast
 * scanner either declines or agrees exactly with jansson, and neither
 * crashes (tests/modelsim/reqparse.c). */
#include <stdint.h>
#include <stdlib.h>

#include "tests/modelsim/reqparse.c"
#include "tests/modelsim/tokens.c"
#include "tests/modelsim/reqparse_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int chat = 0; chat <= 1; chat++) {
        int fast_ok;
        if (!ms_reqparse_agree((const char *)data, size, chat, &fast_ok))
            abort();
        struct ms_parsed p;
        struct ms_parse_error e;
        (void)ms_parse_request((const char *)data, size, chat, &p, &e);
    }
    return 0;
}
