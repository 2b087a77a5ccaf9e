package testbase

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Hostile layers: tar entries written exactly as given — any name (".."
// included), any order, duplicates, hard links, FIFOs, PAX records such as
// file capabilities — for tests of what a crafted base must not achieve.

// Entry is one raw tar entry.
type Entry struct {
	Name     string // as written: may be relative with "..", absolute, long, not ASCII
	Type     byte   // tar.TypeReg (default), TypeDir, TypeSymlink, TypeLink, TypeFifo, ...
	Mode     int64  // raw Unix mode bits, e.g. 04755; 0 means 0644 (0755 for directories)
	Link     string // symlink or hard link target
	Data     []byte
	PAX      map[string]string // PAX records, e.g. SCHILY.xattr.security.capability
	Xattr    map[string]string // shorthand for SCHILY.xattr.<name> records
	Uid, Gid int
}

// Cap is the security.capability value granting cap_setuid+ep (VFS_CAP_REVISION_2).
var Cap = string([]byte{0x01, 0x00, 0x00, 0x02, 0x80, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// RawLayer writes entries in the order given (no parents added, nothing
// sorted or checked), gzipped, as an OCI layer.
func RawLayer(entries ...Entry) (v1.Layer, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Link, Mode: e.Mode, ModTime: Epoch, Uid: e.Uid, Gid: e.Gid}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Data))
		}
		if len(e.PAX) > 0 || len(e.Xattr) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.PAX {
				h.PAXRecords[k] = v
			}
			for k, v := range e.Xattr {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("testbase: raw entry %q: %w", e.Name, err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return gzipLayer(raw.Bytes())
}

// ZerosLayer is a layer holding one file of size zero bytes at name with
// the raw Unix mode bits mode (04755: a large set-uid program): a few
// hundred kilobytes compressed, size bytes unpacked — a gzip bomb when size
// is large. The content is never held in memory.
func ZerosLayer(name string, mode, size int64) (v1.Layer, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: size, ModTime: Epoch}); err != nil {
		return nil, err
	}
	if _, err := io.CopyN(tw, zeros{}, size); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return blobLayer(gz.Bytes())
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func gzipLayer(raw []byte) (v1.Layer, error) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return blobLayer(gz.Bytes())
}

// blobLayer is the OCI layer whose compressed bytes are blob.
func blobLayer(blob []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// WithLayers is base with layers appended (each with a history entry, as
// umoci wants one per layer).
func WithLayers(base v1.Image, layers ...v1.Layer) (v1.Image, error) {
	img := base
	for i, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
			History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: fmt.Sprintf("testbase: hostile layer %d", i+1)}})
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

// SetuidBusybox is a copy of the host's busybox-static with mode bits, for
// set-id files placed by hostile layers.
func SetuidBusybox() ([]byte, error) {
	b, _, err := hostFile("/bin/busybox")
	return b, err
}
