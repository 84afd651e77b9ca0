package projections

import (
	"context"
	"fmt"

	"github.com/edutrack/edutrack/projections/readstore"
)

// The cache fence. A live projector writes the documents a batch changes to the cache before it
// commits them to the store (see Runner.commit). When one of those writes fails (Redis down,
// paused, out of memory, failing over), the key may keep the document as it was, and Redis may
// be unable to delete it either. So the batch raises the projection's cache fence to its
// checkpoint: in this process at once, and for every other process in the read store, in the
// batch's own commit. A reader trusts an entry only if it is known current as of the fence or
// later (cache.Entry.AsOf); it reads any other from the store and writes it back known current
// as of the position it knew, which is past the fence, so the cache fills again on its own.
// A generation's fence also starts at the position it goes live at, so nothing written into its
// keys before (an interrupted switch's warming) is trusted after it.

// cacheFenceColl holds one document per generation, by its checkpoint key; the document's
// position is the fence. The store's position guard keeps it from going down.
const cacheFenceColl = "_cache_fences"

func fenceWrite(key string, pos uint64) readstore.Write {
	return readstore.Write{Coll: cacheFenceColl,
		Doc: readstore.Doc{ID: key, Position: pos, Body: fmt.Appendf(nil, `{"fence":%d}`, pos)}}
}

// loadFences returns the fences of the generations keyed keys; a generation without one has
// fence 0.
func loadFences(ctx context.Context, store readstore.Store, keys []string) (map[string]uint64, error) {
	docs, err := store.GetMany(ctx, cacheFenceColl, keys)
	if err != nil {
		return nil, fmt.Errorf("read cache fences: %w", err)
	}
	out := make(map[string]uint64, len(keys))
	for _, d := range docs {
		out[d.ID] = d.Position
	}
	return out, nil
}
