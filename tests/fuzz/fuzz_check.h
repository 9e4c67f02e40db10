/*
 * FUZZ_CHECK, the one assertion of the fuzz targets: it says which check
 * failed and aborts (so libFuzzer keeps the input), whatever NDEBUG says.
 */
#ifndef PGVALVE_FUZZ_CHECK_H
#define PGVALVE_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer's entry point, declared once for every target. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                         \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                 \
		}                                                                                \
	} while (0)

#endif
