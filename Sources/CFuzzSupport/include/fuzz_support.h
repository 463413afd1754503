#ifndef TOKEND_FUZZ_SUPPORT_H
#define TOKEND_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

typedef int (*tokend_fuzz_callback)(const uint8_t *data, size_t size);

/// libFuzzer's driver when the binary is built with -sanitize=fuzzer; otherwise a fallback
/// that runs the callback once on every file named in argv (directories: every file in
/// them), so that the same binary replays a corpus as a regression test.
int LLVMFuzzerRunDriver(int *argc, char ***argv, tokend_fuzz_callback callback);

#endif
