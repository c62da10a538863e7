package webtier

import (
	"context"
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/facefleet/facefleet/gallery"
)

// galleryStore returns the shared gallery, opening it on first use (an
// unreachable store is a 503 and is tried again on the next call).
func (s *Server) galleryStore(ctx context.Context) (*gallery.Store, error) {
	s.galleryMu.Lock()
	defer s.galleryMu.Unlock()
	if s.shared != nil {
		return s.shared, nil
	}
	st, err := gallery.OpenStore(ctx, s.o.Outputs, s.o.GalleryPrefix, gallery.StoreOptions{
		LegacyKey: s.o.GalleryPrefix + "gallery.json", Logger: s.log,
	})
	if err != nil {
		return nil, errf(fiber.StatusServiceUnavailable, "store_unavailable", "cannot load the gallery: %v", err)
	}
	s.shared = st
	return st, nil
}

// currentGallery is the shared gallery with every tier's edits so far, for
// reading.
func (s *Server) currentGallery(ctx context.Context) (*gallery.Gallery, error) {
	st, err := s.galleryStore(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Refresh(ctx); err != nil {
		return nil, errf(fiber.StatusServiceUnavailable, "store_unavailable", "cannot read the gallery: %v", err)
	}
	return st.Gallery(), nil
}

// applyEdit journals e, mapping what the gallery refuses to the API's answers.
func (s *Server) applyEdit(ctx context.Context, e gallery.Edit) (gallery.Outcome, error) {
	st, err := s.galleryStore(ctx)
	if err != nil {
		return gallery.Outcome{}, err
	}
	out, err := st.Apply(ctx, e)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, gallery.ErrNoFace):
		return out, errf(fiber.StatusNotFound, "no_face", "subject %q has no face %q", e.Subject, e.FaceID)
	case errors.Is(err, gallery.ErrNoSubject):
		return out, errf(fiber.StatusNotFound, "no_subject", "no subject %q is enrolled", e.Subject)
	case errors.Is(err, gallery.ErrFull):
		return out, errf(fiber.StatusInsufficientStorage, "gallery_full", "%v; delete faces or subjects first", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return out, err
	}
	return out, errf(fiber.StatusServiceUnavailable, "store_unavailable", "cannot store the gallery edit: %v", err)
}

// galleryPosition is the journal position this tier has seen; requests carry
// it so workers never match against an older gallery than the one the caller
// just edited. The first call opens the gallery (importing a legacy
// gallery.json before the first request reaches a worker); when the store is
// unreachable it is "" and the workers use their own position.
func (s *Server) galleryPosition(ctx context.Context) string {
	st, err := s.galleryStore(ctx)
	if err != nil {
		s.log.Warn("gallery unavailable; the request goes without a gallery position", "err", err)
		return ""
	}
	return strconv.FormatUint(st.Seq(), 10)
}

// closeGallery releases a gallery this tier opened (waits for a snapshot
// being written); one passed in Options is its owner's to close.
func (s *Server) closeGallery() {
	s.galleryMu.Lock()
	st := s.shared
	s.galleryMu.Unlock()
	if st != nil && s.o.Gallery == nil {
		st.Close()
	}
}
