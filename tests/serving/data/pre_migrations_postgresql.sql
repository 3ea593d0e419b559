-- The serving schema as created by guomen before migrations (serving.db.create_schema,
-- main at fdd4a17, 2026-12-01), for the postgresql dialect. Used by tests/serving/test_migrations.py.

CREATE TABLE api_keys (
	key_id VARCHAR(32) NOT NULL, 
	key_sha256 VARCHAR(64) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	name VARCHAR(200), 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	revoked_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (key_id), 
	UNIQUE (key_sha256)
);

CREATE TABLE enterprise_profiles (
	as_of VARCHAR(10) NOT NULL, 
	enterprise_id VARCHAR(128) NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	model_name VARCHAR(128) NOT NULL, 
	model_version VARCHAR(64) NOT NULL, 
	name TEXT, 
	enterprise_type VARCHAR(64), 
	region TEXT, 
	risk_rank INTEGER NOT NULL, 
	declarations INTEGER NOT NULL, 
	expected_rate DOUBLE PRECISION, 
	max_probability DOUBLE PRECISION, 
	risk_tier VARCHAR(16), 
	share_high DOUBLE PRECISION, 
	share_elevated DOUBLE PRECISION, 
	share_normal DOUBLE PRECISION, 
	share_low DOUBLE PRECISION, 
	first_declared_at TIMESTAMP WITH TIME ZONE, 
	last_declared_at TIMESTAMP WITH TIME ZONE, 
	credit_rating VARCHAR(32) NOT NULL, 
	reasons_up TEXT NOT NULL, 
	reasons_down TEXT NOT NULL, 
	previous_as_of VARCHAR(10), 
	previous_expected_rate DOUBLE PRECISION, 
	expected_rate_delta DOUBLE PRECISION, 
	previous_risk_tier VARCHAR(16), 
	risk_tier_change VARCHAR(16) NOT NULL, 
	share_high_delta DOUBLE PRECISION, 
	share_elevated_delta DOUBLE PRECISION, 
	share_normal_delta DOUBLE PRECISION, 
	share_low_delta DOUBLE PRECISION, 
	warnings TEXT NOT NULL, 
	PRIMARY KEY (as_of, enterprise_id)
);

CREATE INDEX ix_enterprise_profiles_rank ON enterprise_profiles (as_of, risk_rank);

CREATE TABLE inspection_results (
	id BIGSERIAL NOT NULL, 
	declaration_id VARCHAR(128) NOT NULL, 
	inspected_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	selection VARCHAR(16) NOT NULL, 
	result VARCHAR(16) NOT NULL, 
	hazard_type VARCHAR(32), 
	severity VARCHAR(16), 
	disposal VARCHAR(16), 
	received_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	request_id VARCHAR(64) NOT NULL, 
	key_id VARCHAR(32) NOT NULL, 
	worker_id VARCHAR(32), 
	data_quality JSON, 
	PRIMARY KEY (id), 
	UNIQUE (declaration_id)
);

CREATE TABLE rescore_runs (
	as_of VARCHAR(10) NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	model_name VARCHAR(128) NOT NULL, 
	model_version VARCHAR(64) NOT NULL, 
	period_start TIMESTAMP WITH TIME ZONE NOT NULL, 
	period_end TIMESTAMP WITH TIME ZONE NOT NULL, 
	declarations INTEGER NOT NULL, 
	enterprises INTEGER NOT NULL, 
	summary TEXT NOT NULL, 
	mlflow_run_id VARCHAR(64), 
	written_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (as_of)
);

CREATE TABLE score_audit (
	id BIGSERIAL NOT NULL, 
	request_id VARCHAR(64) NOT NULL, 
	item INTEGER NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	key_id VARCHAR(32) NOT NULL, 
	declaration_id VARCHAR(128) NOT NULL, 
	input_sha256 VARCHAR(64) NOT NULL, 
	model_name VARCHAR(200) NOT NULL, 
	model_version VARCHAR(32) NOT NULL, 
	snapshot_as_of TIMESTAMP WITH TIME ZONE, 
	probability FLOAT NOT NULL, 
	tier VARCHAR(16) NOT NULL, 
	decision VARCHAR(32) NOT NULL, 
	decision_reason VARCHAR(64) NOT NULL, 
	monitoring_selected BOOLEAN NOT NULL, 
	warnings JSON NOT NULL, 
	top_reasons JSON NOT NULL, 
	declaration_json TEXT, 
	worker_id VARCHAR(32), 
	data_quality JSON, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_score_audit_request_item UNIQUE (request_id, item)
);

CREATE INDEX ix_score_audit_declaration_id ON score_audit (declaration_id);

CREATE INDEX ix_score_audit_request_id ON score_audit (request_id);

CREATE TABLE storage_probe (
	id INTEGER NOT NULL, 
	probed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE warnings (
	id VARCHAR(40) NOT NULL, 
	subject_kind VARCHAR(20) NOT NULL, 
	subject_key VARCHAR(120) NOT NULL, 
	subject_label VARCHAR(200) NOT NULL, 
	level INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	publication_type VARCHAR(8) NOT NULL, 
	title VARCHAR(300) NOT NULL, 
	matters TEXT NOT NULL, 
	hazard VARCHAR(20), 
	scope JSON NOT NULL, 
	measures JSON NOT NULL, 
	assessment JSON NOT NULL, 
	as_of TIMESTAMP WITH TIME ZONE NOT NULL, 
	proposed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	proposed_by VARCHAR(64) NOT NULL, 
	activated_at TIMESTAMP WITH TIME ZONE, 
	lifted_at TIMESTAMP WITH TIME ZONE, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_warnings_status ON warnings (status);

CREATE INDEX ix_warnings_subject ON warnings (subject_kind, subject_key);

CREATE TABLE web_sessions (
	session_sha256 VARCHAR(64) NOT NULL, 
	key_id VARCHAR(32) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	csrf VARCHAR(64) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	last_seen_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	ended_at TIMESTAMP WITH TIME ZONE, 
	end_reason VARCHAR(16), 
	PRIMARY KEY (session_sha256)
);

CREATE INDEX ix_web_sessions_key_id ON web_sessions (key_id);

CREATE TABLE warning_transitions (
	id SERIAL NOT NULL, 
	warning_id VARCHAR(40) NOT NULL, 
	action VARCHAR(16) NOT NULL, 
	from_status VARCHAR(16), 
	to_status VARCHAR(16) NOT NULL, 
	from_level INTEGER, 
	to_level INTEGER NOT NULL, 
	actor VARCHAR(64) NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	reason TEXT, 
	evaluation JSON, 
	PRIMARY KEY (id), 
	FOREIGN KEY(warning_id) REFERENCES warnings (id)
);

CREATE INDEX ix_warning_transitions_warning ON warning_transitions (warning_id);
