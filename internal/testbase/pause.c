//go:build ignore

/* A hostile preload for tests (testbase.PauseSource): every process that
 * loads it waits for ever in its constructor, before main. A build must not
 * wait with it. */
#include <unistd.h>

__attribute__((constructor)) static void wait_for_ever(void) {
	for (;;)
		pause();
}
