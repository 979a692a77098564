package certs

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// maxPEMFileSize bounds every certificate, key or bundle file this package
// reads. A public CA bundle is about 200 KiB; anything larger is a mistake.
const maxPEMFileSize = 1 << 20

// PEM block types written by this package.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemPublicKey   = "PUBLIC KEY"
)

// errTooLarge reports a file over maxPEMFileSize.
var errTooLarge = fmt.Errorf("file is larger than %d bytes", maxPEMFileSize)

// readLimited reads at most maxPEMFileSize bytes from r and fails if there
// is more.
func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxPEMFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEMFileSize {
		return nil, errTooLarge
	}
	return b, nil
}

// readFile reads the file at path, bounded by maxPEMFileSize. The paths come
// from the operator's configuration, not from a peer.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f)
}

// readRootFile reads name inside root, bounded by maxPEMFileSize.
func readRootFile(root *os.Root, name string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f)
}

// decodePEM decodes every PEM block in data. Unlike pem.Decode in a loop, it
// fails when anything but white space follows the last complete block, so a
// truncated (half-written) file is an error rather than a shorter file.
func decodePEM(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the last complete PEM block (truncated file?)")
	}
	if len(blocks) == 0 {
		return nil, errors.New("no PEM block found")
	}
	return blocks, nil
}

// parseCertificatesPEM parses a file of one or more CERTIFICATE blocks.
func parseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	blocks, err := decodePEM(data)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != pemCertificate {
			return nil, fmt.Errorf("PEM block %d is %q, want %q", i+1, b.Type, pemCertificate)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// parsePrivateKeyPEM parses a file holding exactly one PKCS#8 PRIVATE KEY
// block.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	blocks, err := decodePEM(data)
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 || blocks[0].Type != pemPrivateKey {
		return nil, fmt.Errorf("want exactly one %q PEM block", pemPrivateKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(blocks[0].Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	return s, nil
}

// encodePrivateKeyPEM encodes key as a PKCS#8 PRIVATE KEY block.
func encodePrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// samePublicKey reports whether a and b are the same public key.
func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// writeFileAtomic writes data to name inside root: it creates a new
// temporary file next to it with mode perm, writes, syncs and closes it,
// renames it over name and syncs the directory. On failure the temporary file
// is removed and name is untouched.
func writeFileAtomic(root *os.Root, name string, data []byte, perm fs.FileMode) (err error) {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	tmp := "." + name + ".tmp-" + hex.EncodeToString(suffix[:])
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			root.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := root.Rename(tmp, name); err != nil {
		return err
	}
	return syncDir(root)
}

// syncDir fsyncs the root directory so that a rename survives a crash.
func syncDir(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
