package multipart

import (
	"strings"
	"testing"
)

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

func TestCompleteDocument(t *testing.T) {
	b, err := CompleteDocument([]Part{{Number: 1, ETag: `"abc"`, SHA256: strings.Repeat("00", 32)}, {Number: 2, ETag: "def"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
		`<Part><PartNumber>1</PartNumber><ETag>&#34;abc&#34;</ETag><ChecksumSHA256>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</ChecksumSHA256></Part>` +
		`<Part><PartNumber>2</PartNumber><ETag>&#34;def&#34;</ETag></Part></CompleteMultipartUpload>`
	if string(b) != want {
		t.Fatalf("document:\n%s\nwant\n%s", b, want)
	}
	if _, err := CompleteDocument([]Part{{Number: 3, SHA256: "zz"}}); err == nil || !strings.Contains(err.Error(), "part 3") {
		t.Fatalf("bad sum: %v", err)
	}
}
