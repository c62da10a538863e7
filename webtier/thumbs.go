package webtier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"slices"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/image/draw"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/protocol"
)

// Thumbnails: an enrollment through the API keeps a small square crop of the
// face, faces/<id>.jpg in the Outputs store, for the page's People view.

// ThumbSize is the side of a face thumbnail, in pixels.
const ThumbSize = 96

func faceThumbKey(id string) string { return "faces/" + id + ".jpg" }

// readBack reads an enrollment upload back from the input store for its
// thumbnail (nil, logged, when it cannot: the thumbnail is best effort).
func (s *Server) readBack(ctx context.Context, key string) []byte {
	data, _, err := s.o.Inputs.Get(ctx, key)
	if err != nil {
		s.log.Warn("cannot read an enrollment upload back for its thumbnail", "key", key, "err", err)
		return nil
	}
	return data
}

// storeThumbnail crops the face at box from img and stores it under id. It is
// best effort (the enrollment already stands; a face without a picture is shown
// without one) and reports whether it stored one.
func (s *Server) storeThumbnail(ctx context.Context, subject, id string, img []byte, box protocol.Box) bool {
	if img == nil {
		return false
	}
	thumb, err := thumbnail(img, box)
	if err != nil {
		s.log.Warn("no thumbnail for an enrolled face", "subject", subject, "id", id, "err", err)
		return false
	}
	if _, err := s.o.Outputs.Put(ctx, faceThumbKey(id), thumb, "image/jpeg"); err != nil {
		s.log.Warn("cannot store a face thumbnail", "subject", subject, "id", id, "err", err)
		return false
	}
	return true
}

// thumbnail crops box (grown by a quarter on each side, made square) from the
// image and scales it to ThumbSize, as JPEG.
func thumbnail(data []byte, box protocol.Box) ([]byte, error) {
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if box.W <= 0 || box.H <= 0 {
		return nil, errors.New("the face has an empty box")
	}
	side := max(box.W, box.H) * 1.5
	cx, cy := box.X+box.W/2, box.Y+box.H/2
	r := image.Rect(int(cx-side/2), int(cy-side/2), int(cx+side/2), int(cy+side/2)).Intersect(img.Bounds())
	if r.Empty() {
		return nil, errors.New("the face box lies outside the image")
	}
	dst := image.NewRGBA(image.Rect(0, 0, ThumbSize, ThumbSize))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, r, draw.Src, nil)
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 85}); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return out.Bytes(), nil
}

// dropThumbnails deletes the thumbnails of faces removed from the gallery (best
// effort: a leftover is never shown, since listing starts from the gallery).
func (s *Server) dropThumbnails(ctx context.Context, ids []string) {
	for _, id := range ids {
		if err := s.o.Outputs.Delete(ctx, faceThumbKey(id)); err != nil {
			s.log.Warn("cannot delete a face thumbnail", "id", id, "err", err)
		}
	}
}

// faceThumbnail is GET /v1/subjects/{name}/faces/{id}/thumbnail: a JPEG, 404
// when the subject has no such face or none was kept (enrolled without the API).
func (s *Server) faceThumbnail(c *fiber.Ctx) error {
	if _, err := s.subjectParam(c); err != nil {
		return err
	}
	id, err := faceIDParam(c)
	if err != nil {
		return err
	}
	name, faces, err := s.subjectFaces(c)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(faces, func(f gallery.FaceInfo) bool { return f.ID == id }) {
		return errf(fiber.StatusNotFound, "no_face", "subject %q has no face %q", name, id)
	}
	data, _, err := s.o.Outputs.Get(c.UserContext(), faceThumbKey(id))
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return errf(fiber.StatusNotFound, "no_thumbnail", "face %s of %q has no thumbnail (it was not enrolled through the API)", id, name)
	case err != nil:
		return errf(fiber.StatusServiceUnavailable, "store_unavailable", "cannot read the thumbnail of face %s: %v", id, err)
	}
	c.Set(fiber.HeaderContentType, "image/jpeg")
	c.Set(fiber.HeaderCacheControl, "private, max-age=3600")
	return c.Send(data)
}
