// Package certs provides the TLS material of the greeter service: a dev PKI,
// certificate issuance, server and client TLS configurations, and the caller
// identity carried by a verified client certificate.
//
// Guarantees:
//
//   - Every configuration it returns negotiates TLS 1.3 or nothing, and offers
//     only the "h2" application protocol.
//   - A server configured by [ServerConfig] picks up a changed certificate,
//     key or client CA bundle for new handshakes within the refresh interval.
//     Established connections keep the material they were opened with. A file
//     that is missing, truncated, unparsable, expired or does not match its
//     key never replaces the last good material; it is logged once per
//     distinct content, never per handshake. File contents are never logged.
//   - [PeerCertificate] returns a client certificate only from a chain that
//     the TLS stack verified; a certificate that was merely presented names
//     nobody. [Identities] offers its names typed (URI SAN, DNS SANs, common
//     name), and [ParseIdentity] reads an allowlist entry as one of these
//     types, so a name of one type never matches an entry of another.
//   - [InitDev] never overwrites an existing file: a complete, valid dev PKI
//     is left alone, anything partial or corrupt is reported as an error.
//     Private keys are written with mode 0600, atomically (temporary file,
//     fsync, rename, fsync of the directory).
package certs
