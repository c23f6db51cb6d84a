// Package version holds the identity stamped into every binary of the image.
package version

// Version is set at build time by the builder to a digest of the source
// tree (never from the clock), so two builds of the same source agree.
var Version = "dev"
