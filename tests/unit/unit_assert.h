/*
 * Assertions the unit tests share beyond cmocka's own. Include after
 * <cmocka.h> (and <string.h>); tests/unit/CMakeLists.txt puts this folder on
 * every unit test's include path.
 */
#ifndef PGVALVE_TESTS_UNIT_ASSERT_H
#define PGVALVE_TESTS_UNIT_ASSERT_H

/* Fails, showing both strings, unless 'needle' occurs in 'hay' (a NULL 'hay' fails too). */
#define assert_contains(hay, needle)                                                   \
	do {                                                                           \
		const char *h_ = (hay), *n_ = (needle);                                \
		if (h_ == NULL || strstr(h_, n_) == NULL)                              \
			fail_msg("expected \"%s\" in \"%s\"", n_, h_ ? h_ : "(null)"); \
	} while (0)

#endif
