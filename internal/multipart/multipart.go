// Package multipart holds what the coordinator and its agents must agree
// on about multipart uploads: how an output is cut into parts, and the
// document that completes an upload. The agent hashes each part before it asks for the part URLs, and
// the coordinator signs those hashes into them, so both must cut alike.
package multipart

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"strings"
)

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

// Part is an uploaded part as a completion names it: its number, the ETag
// the store answered and its SHA-256 (hex, "" when sent without one).
type Part struct {
	Number int32
	ETag   string
	SHA256 string
}

type completeDoc struct {
	XMLName xml.Name   `xml:"http://s3.amazonaws.com/doc/2006-03-01/ CompleteMultipartUpload"`
	Parts   []partElem `xml:"Part"`
}

type partElem struct {
	PartNumber     int32
	ETag           string
	ChecksumSHA256 string `xml:",omitempty"`
}

// CompleteDocument is S3's CompleteMultipartUpload body, which an agent
// POSTs to a presigned completion URL.
func CompleteDocument(parts []Part) ([]byte, error) {
	doc := completeDoc{}
	for _, p := range parts {
		e := partElem{PartNumber: p.Number, ETag: `"` + strings.Trim(p.ETag, `"`) + `"`}
		if p.SHA256 != "" {
			sum, err := hex.DecodeString(p.SHA256)
			if err != nil {
				return nil, fmt.Errorf("part %d: sha256 %q: %w", p.Number, p.SHA256, err)
			}
			e.ChecksumSHA256 = base64.StdEncoding.EncodeToString(sum)
		}
		doc.Parts = append(doc.Parts, e)
	}
	return xml.Marshal(doc)
}
