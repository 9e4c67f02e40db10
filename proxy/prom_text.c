/* Prometheus text exposition helpers (prom_text.h). */
#include "prom_text.h"

void prom_label_value(char *dst, size_t cap, const char *src)
{
	size_t o = 0;

	for (; *src && o + 3 < cap; src++) {
		if (*src == '\\' || *src == '"') {
			dst[o++] = '\\';
			dst[o++] = *src;
		} else if (*src == '\n') {
			dst[o++] = '\\';
			dst[o++] = 'n';
		} else {
			dst[o++] = *src;
		}
	}
	dst[o] = '\0';
}
