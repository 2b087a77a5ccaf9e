package source

import "context"

// FetchFile downloads u into a new file in dir with the Fetcher's retries,
// stall timeout and progress, and returns its path. It verifies nothing: the
// caller checks the file against what was published for it.
func (f *Fetcher) FetchFile(ctx context.Context, u, dir string) (string, error) {
	p, _, err := f.fetchURL(ctx, u, dir, nil)
	return p, err
}
