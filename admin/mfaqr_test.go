package admin_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"strings"
	"testing"

	"github.com/boombuler/barcode/qr"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/store/storetest"
)

// qrDecode checks that dataURL is a 200×200 PNG in a data: URL and
// returns the text of the QR code it shows, read by gozxing (a port of
// ZXing, an independent decoder). It also checks
// that the code has the quiet zone scanners need around it.
func qrDecode(t *testing.T, dataURL, uri string) string {
	t.Helper()
	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(dataURL, prefix) {
		t.Fatalf("qrCode %.40q... is not a data:image/png;base64 URL", dataURL)
	}
	raw, err := base64.StdEncoding.DecodeString(dataURL[len(prefix):])
	if err != nil {
		t.Fatalf("qrCode: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("qrCode is no PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 200 || b.Dy() != 200 {
		t.Fatalf("qrCode is %v, want 200×200", b)
	}
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		t.Fatal(err)
	}
	// A scanner needs 4 modules of white around the code (ISO/IEC 18004).
	n := code.Bounds().Dx()
	minX, minY, maxX, maxY := 200, 200, -1, -1
	for y := range 200 {
		for x := range 200 {
			if gray(img, x, y) < 0x8000 {
				minX, minY, maxX, maxY = min(minX, x), min(minY, y), max(maxX, x), max(maxY, y)
			}
		}
	}
	module := (maxX - minX + 1) / n
	if module < 1 || (maxX-minX+1)%n != 0 || maxY-minY != maxX-minX {
		t.Fatalf("the code spans (%d,%d)-(%d,%d): not %d whole modules square", minX, minY, maxX, maxY, n)
	}
	if quiet := min(minX, minY, 199-maxX, 199-maxY) / module; quiet < 4 {
		t.Fatalf("%d modules of white around the code; a scanner needs 4", quiet)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// PURE_BARCODE: the image is the code as drawn, not a photo. gozxing's
	// detector for photos misses about 1 in 130 generated codes with random
	// secrets (measured over 400; "NotFoundException"), quiet zone or not.
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("qrCode does not decode as a QR code: %v", err)
	}
	return res.GetText()
}

// gray is a pixel's luminance.
func gray(img image.Image, x, y int) uint32 {
	r, g, b, _ := img.At(x, y).RGBA()
	return (r + g + b) / 3
}

// TestMFAEnrollmentShowsTheURIAsAQRCode: both enrollment answers carry
// the otpauth URI as a PNG QR code that decodes to that URI, and are
// never cached.
func TestMFAEnrollmentShowsTheURIAsAQRCode(t *testing.T) {
	t.Parallel()
	m := mNew(t, newAPI(t, storetest.OpenBolt(t)), true, &mClock{t: mEpoch})
	for _, c := range []struct {
		path, uriField string
		body           any
		want           int
	}{
		{"/api/mfa/enable", "uri", nil, http.StatusOK},
		{"/api/v1/user/mfa", "otpauth", map[string]any{"type": map[string]any{"id": 1}, "password": adminPassword}, http.StatusCreated},
	} {
		t.Run(c.path, func(t *testing.T) {
			code, h, body := m.doWithHeaders("POST", c.path, m.admin, c.body)
			if code != c.want {
				t.Fatalf("%d %s", code, body)
			}
			if cc := h.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			var resp map[string]any
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			uri, _ := resp[c.uriField].(string)
			qr, _ := resp["qrCode"].(string)
			mSecretOf(t, uri, "admin")
			if got := qrDecode(t, qr, uri); got != uri {
				t.Errorf("the QR code reads %q, want the URI %q", got, uri)
			}
		})
	}
}

// TestEnrollmentQRCodeReadsAtEveryLength: the QR code of an otpauth URI
// decodes to that URI whatever its length (the user name's), with the
// quiet zone of 4 modules the standard asks around it. otp.Key.Image
// scaled the code to fill the image and left, for some lengths, two
// pixels of white.
func TestEnrollmentQRCodeReadsAtEveryLength(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 120; n++ {
		uri := "otpauth://totp/warden:" + strings.Repeat("u", n) + "?algorithm=SHA1&digits=6&issuer=warden&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
		qr, err := admin.EnrollmentQR(uri)
		if err != nil {
			t.Fatalf("user name of %d: %v", n, err)
		}
		if got := qrDecode(t, qr, uri); got != uri {
			t.Fatalf("user name of %d: the QR code reads %q", n, got)
		}
	}
}
