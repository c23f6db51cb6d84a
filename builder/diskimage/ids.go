package diskimage

import (
	"crypto/sha256"

	"github.com/google/uuid"
)

// idNamespace scopes derived identifiers to this package, so the same seed
// used elsewhere in a build cannot yield the same UUIDs.
var idNamespace = uuid.MustParse("c4ed8541-eac9-4928-92e2-833e2adbd679")

// deriveUUID returns the identifier for purpose within the build identified
// by seed: a name-based UUID (RFC 9562 version 8, SHA-256). purpose comes
// first and never contains a NUL, so (purpose, seed) pairs cannot collide.
func deriveUUID(seed []byte, purpose string) uuid.UUID {
	data := make([]byte, 0, len(purpose)+1+len(seed))
	data = append(data, purpose...)
	data = append(data, 0)
	data = append(data, seed...)
	return uuid.NewHash(sha256.New(), idNamespace, data, 8)
}
