package multipart

import "testing"

func TestPartSize(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		size, base, part int64
		parts            int
	}{
		{1, 16 * mib, 16 * mib, 1},
		{16 * mib, 16 * mib, 16 * mib, 1},
		{16*mib + 1, 16 * mib, 16 * mib, 2},
		{2 << 30, 16 * mib, 16 * mib, 128},
		{5 * mib * MaxParts, 5 * mib, 5 * mib, MaxParts},
		{5*mib*MaxParts + 1, 5 * mib, 10 * mib, 5001},
		{100, 0, 16 * mib, 1},
		{0, 5 * mib, 5 * mib, 0},
	}
	for _, c := range cases {
		part := PartSize(c.size, c.base)
		if part != c.part || Count(c.size, part) != c.parts {
			t.Errorf("PartSize(%d, %d) = %d in %d parts, want %d in %d", c.size, c.base, part, Count(c.size, part), c.part, c.parts)
		}
	}
}
