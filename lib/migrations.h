/*
 * lib/migrations.h - the embedded schema migrations (generated from schema/).
 */
#ifndef KILN_MIGRATIONS_H
#define KILN_MIGRATIONS_H
typedef struct {
    int version;
    const char *name;
    const char *sql;
} kiln_migration_t;
extern const kiln_migration_t kiln_migrations[];
extern const int kiln_n_migrations;
#endif
