DROP TABLE matched_latent;
DROP TABLE figure_refreshes;
DROP TABLE figure_cells;
DROP TABLE sign_in_attempts;
DROP TABLE sessions;
DROP TABLE staff;
