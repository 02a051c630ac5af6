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

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/pquerna/otp"

	"github.com/warden-mqtt/warden/store/storetest"
)

// qrDecode checks that dataURL is a 200×200 PNG in a data: URL and
// returns the text of the QR code it shows, as a phone's camera reads
// it (gozxing, a port of ZXing, an independent decoder). It also checks
// that the image is pquerna/otp's rendering of uri, pixel for pixel.
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
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	want, err := key.Image(200, 200)
	if err != nil {
		t.Fatal(err)
	}
	for y := range 200 {
		for x := range 200 {
			if gray(img, x, y) != gray(want, x, y) {
				t.Fatalf("pixel (%d, %d) differs from the QR code of the URI", x, y)
			}
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
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
