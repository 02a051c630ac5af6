package pki

// DefaultCAName is the common name of the internal CA created on first
// start.
const DefaultCAName = "warden internal CA"
