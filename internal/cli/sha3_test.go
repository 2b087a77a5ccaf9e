package cli_test

import (
	"crypto/sha3"
	"encoding/hex"
)

func sha3Hex(b []byte) string {
	s := sha3.Sum256(b)
	return hex.EncodeToString(s[:])
}
