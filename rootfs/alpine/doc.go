// Package alpine reads Alpine Linux package repositories (apk v2 format)
// without apk-tools: it verifies and parses APKINDEX.tar.gz, resolves
// dependencies with apk's version rules and verifies .apk files.
//
// Format. An .apk is three concatenated gzip members that together form
// one tar stream: a signature member (".SIGN.RSA[256|512].<key name>", a
// PKCS#1 v1.5 signature over the compressed bytes of the next member), the
// control member (.PKGINFO and install scripts; .PKGINFO's datahash is the
// SHA-256 of the compressed data member) and the data member (the files).
// The index's C: field is "Q1" + base64(SHA-1 of the compressed control
// member). APKINDEX.tar.gz is a signature member followed by a gzip'd tar
// holding DESCRIPTION and APKINDEX, the signature covering every byte
// after its own member.
//
// Trust. A Keyring names the trusted RSA public keys by file name
// (DefaultKeys: Alpine's 16 keys, embedded). The index must carry a valid
// signature by a trusted key; each package must match its index checksum,
// carry a valid signature by a trusted key over its control member, and
// match the signed datahash, so every byte of the files is authenticated
// before anyone reads them. The bytes of the signature member itself
// outside the signature (gzip and tar headers) are not covered, as in
// apk-tools. After a Verify, a lock can pin the two member digests and
// VerifyDigests re-checks a cached file without keys.
package alpine
