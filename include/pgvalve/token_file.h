/*
 * Reading a bearer token from a file: the proxy's admin.token_file and the
 * token_file the coordinator sends to each proxy. Both sides read the same
 * way, so a file the proxy accepts is one the coordinator can use.
 *
 * The token is the file's first line without its line end ("\n" or "\r\n"),
 * from TOKEN_FILE_MIN to TOKEN_FILE_MAX printable characters (no controls:
 * it travels in an HTTP header). What follows the first line is ignored. The
 * file's permissions are not checked: secrets mounted by orchestrators are
 * often world-readable inside their container, and refusing them would make
 * the proxy unstartable there; keeping the file private is the operator's
 * business.
 */
#ifndef PGVALVE_TOKEN_FILE_H
#define PGVALVE_TOKEN_FILE_H

#include <stddef.h>

#define TOKEN_FILE_MIN 16
#define TOKEN_FILE_MAX 1024

/*
 * The token in 'path', malloc'd (the caller frees it), or NULL with 'err'
 * filled: 'cannot open "PATH": <strerror>', '"PATH" must hold a token of at
 * least 16 characters', ... Callers prefix what the file is for.
 */
char *token_file_read(const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
