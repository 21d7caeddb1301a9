-- The SQLite twin of this version replaces its per-row change-marker triggers by an UPDATE at
-- the end of each writing statement. PostgreSQL's triggers already run once per statement
-- (see 20261201010000_add_change_marker.sql) and stay as they are: nothing to change here.

SELECT 1;
