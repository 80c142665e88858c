-- The password cost classes read model (projections.PasswordClassesView): the cost class of each
-- imported user's hash (its algorithm and costs, with zero salt and key: no secret) until idlog
-- hashes the password again, one row per user per generation (see 00010). Sign-in pads failed
-- password checks with the work of every class present. Queries read the live generation only.

-- +goose Up
CREATE TABLE password_classes (
    generation INTEGER NOT NULL,
    uid        TEXT NOT NULL,
    class      TEXT NOT NULL,
    PRIMARY KEY (generation, uid)
);
CREATE INDEX password_classes_class ON password_classes (generation, class);

-- +goose Down
DROP TABLE password_classes;
