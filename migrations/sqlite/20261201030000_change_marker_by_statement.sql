-- The change marker is now counted once per writing statement instead of once per written row.
-- A row trigger ran an UPDATE of the marker for every release and every evidence row a check
-- wrote (two per release on a first check, about a third of the cost of each row). SQLite has
-- no statement triggers, so each statement of the store that writes releases, evidence or
-- per-version metadata ends with the marker's own UPDATE, which counts the change when the
-- statement changed a row (see store::changes::mark_changed). Writes that pages and feeds do
-- not show (releases.alerts_done_at) no longer count as a change.

DROP TRIGGER change_marker_releases_insert;
DROP TRIGGER change_marker_releases_update;
DROP TRIGGER change_marker_releases_delete;
DROP TRIGGER change_marker_evidence_insert;
DROP TRIGGER change_marker_evidence_update;
DROP TRIGGER change_marker_evidence_delete;
DROP TRIGGER change_marker_metadata_insert;
DROP TRIGGER change_marker_metadata_update;
