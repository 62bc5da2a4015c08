/*
 * replay.c - standalone driver: runs LLVMFuzzerTestOneInput() once on every
 * file named on the command line, directories expanded (one level, sorted),
 * so that any compiler and any build (release, sanitizers, Valgrind) replays
 * the corpus under ctest. A finding aborts inside the harness; this driver
 * fails on its own only for files it cannot read.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;

	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "replay: %s: cannot size\n", path);
		fclose(f);
		return -1;
	}
	/* Exactly sized, as libFuzzer does, so reads past the end are seen. */
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "replay: %s: read failed\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

static int skip_entry(const struct dirent *e)
{
	return e->d_name[0] == '.';
}

static int replay_path(const char *path, size_t *count)
{
	struct dirent **list;
	struct stat st;
	int n, k, bad = 0;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return replay_file(path);
	}
	n = scandir(path, &list, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (k = 0; k < n; k++) {
		char *sub;

		if (!skip_entry(list[k]) &&
		    asprintf(&sub, "%s/%s", path, list[k]->d_name) >= 0) {
			if (stat(sub, &st) == 0 && S_ISREG(st.st_mode)) {
				(*count)++;
				bad |= replay_file(sub) != 0;
			}
			free(sub);
		}
		free(list[k]);
	}
	free(list);
	return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int i, bad = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++)
		bad |= replay_path(argv[i], &count) != 0;
	if (count == 0) {
		fprintf(stderr, "replay: no input files\n");
		return 1;
	}
	printf("replay: %zu inputs, %s\n", count,
	       bad ? "ERRORS" : "all passed");
	return bad ? 1 : 0;
}
