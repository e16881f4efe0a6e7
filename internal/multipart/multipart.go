// Package multipart holds the rule of multipart uploads that the
// coordinator and its agents must agree on: how an output is cut into
// parts. The agent hashes each part before it asks for the part URLs, and
// the coordinator signs those hashes into them, so both must cut alike.
package multipart

// MaxParts is S3's limit of parts in one upload.
const MaxParts = 10000

// PartSize is the part size for an object of size bytes: base, doubled
// until at most MaxParts parts cover the object.
func PartSize(size, base int64) int64 {
	if base <= 0 {
		base = 16 << 20
	}
	part := base
	for Count(size, part) > MaxParts {
		part *= 2
	}
	return part
}

// Count is how many parts of part bytes cover size bytes.
func Count(size, part int64) int {
	if size <= 0 || part <= 0 {
		return 0
	}
	return int((size + part - 1) / part)
}
