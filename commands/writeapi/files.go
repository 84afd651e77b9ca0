package writeapi

import (
	"errors"
	"net/http"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/problem"
)

// startFileUpload declares a module file and answers where to PUT its bytes.
func (a *API) startFileUpload(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	courseID, err := pathID(r, "id", "course")
	if err != nil {
		return 0, nil, err
	}
	moduleID, err := pathID(r, "moduleId", "module")
	if err != nil {
		return 0, nil, err
	}
	var body struct {
		Name   *string `json:"name"`
		Type   *string `json:"type"`
		Size   *int64  `json:"size"`
		SHA256 *string `json:"sha256"`
	}
	if err := decode(w, r, &body); err != nil {
		return 0, nil, err
	}
	u := course.FileUpload{FileID: m.CommandID, ModuleID: moduleID}
	for _, f := range []struct {
		name string
		src  *string
		dst  *string
	}{{"name", body.Name, &u.Name}, {"type", body.Type, &u.Type}, {"sha256", body.SHA256, &u.SHA256}} {
		if *f.dst, err = required(f.name, f.src); err != nil {
			return 0, nil, err
		}
	}
	if body.Size == nil {
		return 0, nil, problem.New(http.StatusBadRequest, "size", "is required")
	}
	u.Size = *body.Size
	res, err := a.h.StartModuleFileUpload(r.Context(), m, commands.StartModuleFileUpload{CourseID: courseID, Upload: u})
	return created(w, res.Result, filePath(courseID, moduleID, u.FileID)), res, err
}

// completeFileUpload checks the uploaded bytes and lists the file on its module. Bytes that
// differ from the declaration answer 422, naming what differs: the request was well formed.
func (a *API) completeFileUpload(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	if err := problem.NoBody(r); err != nil {
		return 0, nil, err
	}
	courseID, err := pathID(r, "id", "course")
	if err != nil {
		return 0, nil, err
	}
	moduleID, err := pathID(r, "moduleId", "module")
	if err != nil {
		return 0, nil, err
	}
	fileID, err := pathID(r, "fileId", "file")
	if err != nil {
		return 0, nil, err
	}
	res, err := a.h.CompleteModuleFileUpload(r.Context(), m, commands.CompleteModuleFileUpload{CourseID: courseID, ModuleID: moduleID, FileID: fileID})
	return http.StatusOK, res, UploadMismatch(err)
}

// UploadMismatch is err as a client reads it: bytes that differ from their declaration are a
// 422 naming the field that differs. Any way in to CompleteModuleFileUpload answers it so.
func UploadMismatch(err error) error {
	var mismatch *course.MismatchError
	if errors.As(err, &mismatch) {
		return problem.New(http.StatusUnprocessableEntity, mismatch.Field, mismatch.Error())
	}
	return err
}

func filePath(courseID, moduleID, fileID string) string {
	return "/v1/courses/" + courseID + "/modules/" + moduleID + "/files/" + fileID
}
