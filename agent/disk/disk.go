// Package disk tells how much room an agent's data directory has, so it
// never accepts work that would fill the PC's disk.
package disk

// Reserve is left free for the PC's owner whatever the agent does.
const Reserve = 1 << 30

// Available is how many bytes the agent may still use under dir: what the
// filesystem offers an unprivileged user, minus Reserve (never negative).
func Available(dir string) (int64, error) {
	free, err := free(dir)
	if err != nil {
		return 0, err
	}
	return max(0, free-Reserve), nil
}
