package graphql

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/graphql/exec"
	"github.com/edutrack/edutrack/readapi/graphql/model"
)

// Image is the course's image with its URLs rewritten as every REST route rewrites them (the
// REST layer's MediaURLs, over the same JSON), so both point at the same place.
func (c courseResolver) Image(_ context.Context, obj *model.Course) (*model.CourseImage, error) {
	if obj.Image == nil {
		return nil, nil
	}
	raw, err := json.Marshal(obj.Image)
	if err != nil {
		return nil, err
	}
	var img documents.CourseImage
	if err := json.Unmarshal(c.s.api.MediaURLs(raw), &img); err != nil {
		return nil, fmt.Errorf("decode the image of course %s: %w", obj.ID, err)
	}
	return &model.CourseImage{Status: img.Status, Width: img.Width, Height: img.Height,
		Formats: &model.ImageFormats{Webp: sources(img.Formats["webp"]), Jpeg: sources(img.Formats["jpeg"])}}, nil
}

func sources(s []documents.ImageSource) []documents.ImageSource {
	if s == nil {
		return []documents.ImageSource{}
	}
	return s
}

func (r *resolver) ModuleFile() exec.ModuleFileResolver { return moduleFileResolver{r.s} }

type moduleFileResolver struct{ s *Server }

// DownloadURL is the link GET /v1/courses/{id}/modules/{moduleId}/files/{fileId} redirects to,
// signed under the same rules by the same code: null with NOT_FOUND where the route answers
// 404. The read of the enrollment it may need waits for minPosition as the route does.
func (f moduleFileResolver) DownloadURL(ctx context.Context, obj *model.ModuleFile) (*string, error) {
	a, err := access.CallerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := f.s.wait(ctx, documents.CoursesProjection, documents.LearnersProjection); err != nil {
		return nil, err
	}
	url, err := f.s.api.FileURL(ctx, a, obj.CourseID, obj.ModuleID, obj.ID)
	if err != nil {
		return nil, err
	}
	return &url, nil
}
