package blob

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Claim is what an uploader says an object is: its size and SHA-256
// (hex), and for a multipart upload each part's SHA-256 (hex) in order.
type Claim struct {
	Size   int64
	SHA256 string
	Parts  []string
}

// ChecksumHeader carries an upload's SHA-256 (base64) to S3, which refuses
// bytes that do not match it. URLs signed with a sum need it on the PUT.
const ChecksumHeader = "x-amz-checksum-sha256"

// B64 turns a hex SHA-256 into the base64 S3 speaks; "" if it is not one.
func B64(hexSum string) string {
	b, err := hex.DecodeString(hexSum)
	if err != nil || len(b) != sha256.Size {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// composite is S3's checksum of a multipart object: the SHA-256 of the
// parts' raw SHA-256s, and "-N".
func composite(parts []string) (string, error) {
	h := sha256.New()
	for i, p := range parts {
		b, err := hex.DecodeString(p)
		if err != nil || len(b) != sha256.Size {
			return "", fmt.Errorf("part %d: sha256 %q is not 64 hex digits", i+1, p)
		}
		h.Write(b)
	}
	return fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(h.Sum(nil)), len(parts)), nil
}

// matchStored compares the checksum a store computed itself (base64,
// "-N" for a multipart object) with a claim. proven is false when the
// store kept none.
func matchStored(key, stored string, c Claim) (proven bool, err error) {
	if stored == "" {
		return false, nil
	}
	want := B64(c.SHA256)
	if strings.Contains(stored, "-") {
		if want, err = composite(c.Parts); err != nil {
			return false, fmt.Errorf("check %s: %w", key, err)
		}
	}
	if stored != want {
		return false, fmt.Errorf("check %s: the store computed sha256 %s, the uploader claimed %s: %w", key, stored, want, ErrMismatch)
	}
	return true, nil
}
