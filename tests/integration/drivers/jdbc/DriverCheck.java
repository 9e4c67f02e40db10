// Driver-compatibility check for the PostgreSQL JDBC driver (Debian's libpostgresql-jdbc-java),
// run by tests/integration/test_drivers.py as a single-file source program:
//
//   java -cp /usr/share/java/postgresql.jar DriverCheck.java
//
// It connects through pgvalve-proxy as scram_user, runs the scenario below and prints one JSON
// line of what it saw; the pytest test checks it against values read straight from PostgreSQL.
// Any unexpected failure: a stack trace on stderr and a non-zero exit status.
//
// Input (environment): PGV_HOST, PGV_PORT, PGV_USER, PGV_PASSWORD, PGV_DATABASE, PGV_PREFIX
// (table name prefix: <prefix>_items, <prefix>_big, <prefix>_batch), PGV_BIG_UNIT and
// PGV_BIG_CHARS (the large value is PGV_BIG_UNIT repeated and cut to PGV_BIG_CHARS chars).
// Optional: PGV_SSLMODE (pgjdbc's sslmode; disable by default), PGV_SSLROOTCERT (the CA file,
// PEM, for verify-ca and verify-full), PGV_CHANNEL_BINDING (pgjdbc's channelBinding property,
// set only when this pgjdbc has it: the JSON's "channel_binding_property" says whether it does;
// Debian 12's 42.5.5 does not and always uses SCRAM-SHA-256 without binding), PGV_MODE=login
// (only log in: prints {"connected": true, ...} or the error's {"connected": false, "sqlstate",
// "message"} and exits 0; used for wrong passwords).

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.postgresql.PGProperty;
import org.postgresql.PGStatement;
import org.postgresql.util.PSQLException;
import org.postgresql.util.ServerErrorMessage;

public class DriverCheck {
    static String env(String name) {
        String v = System.getenv(name);
        if (v == null) {
            throw new IllegalStateException("missing environment variable " + name);
        }
        return v;
    }

    static String bigValue(String unit, int chars) {
        StringBuilder sb = new StringBuilder(chars);
        while (sb.length() < chars) {
            sb.append(unit, 0, Math.min(unit.length(), chars - sb.length()));
        }
        return sb.toString();
    }

    static long count(Connection conn, String sql) throws SQLException {
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    /** Whether this pgjdbc knows the connection property 'name' (unknown ones are ignored). */
    static boolean hasProperty(String name) {
        for (PGProperty p : PGProperty.values()) {
            if (p.getName().equals(name)) {
                return true;
            }
        }
        return false;
    }

    static Properties connectionProperties() {
        Properties props = new Properties();
        props.setProperty("user", env("PGV_USER"));
        props.setProperty("password", env("PGV_PASSWORD"));
        String sslmode = System.getenv("PGV_SSLMODE");
        props.setProperty("sslmode", sslmode == null ? "disable" : sslmode);
        String root = System.getenv("PGV_SSLROOTCERT");
        if (root != null) {
            props.setProperty("sslrootcert", root);
        }
        String binding = System.getenv("PGV_CHANNEL_BINDING");
        if (binding != null && hasProperty("channelBinding")) {
            props.setProperty("channelBinding", binding);
        }
        props.setProperty("prepareThreshold", "1"); // server-side prepare from the first use
        props.setProperty("ApplicationName", "pgvalve-drivers-jdbc");
        props.setProperty("connectTimeout", "10");
        props.setProperty("socketTimeout", "60");
        return props;
    }

    /** The server's side of TLS: pg_stat_ssl of the session's backend. */
    static Map<String, Object> tlsInfo(Connection conn) throws SQLException {
        Map<String, Object> tls = new LinkedHashMap<>();
        try (Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) {
            rs.next();
            tls.put("server_ssl", rs.getBoolean(1));
        }
        return tls;
    }

    static void login(String url) throws Exception {
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("channel_binding_property", hasProperty("channelBinding"));
        try (Connection conn = DriverManager.getConnection(url, connectionProperties())) {
            result.put("connected", true);
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT current_user")) {
                rs.next();
                result.put("current_user", rs.getString(1));
            }
            result.put("tls", tlsInfo(conn));
        } catch (PSQLException e) {
            ServerErrorMessage m = e.getServerErrorMessage();
            if (m == null) {
                throw e;
            }
            result.put("connected", false);
            result.put("sqlstate", m.getSQLState());
            result.put("severity", m.getSeverity());
            result.put("message", m.getMessage());
        }
        System.out.println(toJson(result));
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + env("PGV_HOST") + ":" + env("PGV_PORT") + "/"
                + env("PGV_DATABASE");
        if ("login".equals(System.getenv("PGV_MODE"))) {
            login(url);
            return;
        }
        String prefix = env("PGV_PREFIX");
        String items = prefix + "_items", big = prefix + "_big", batch = prefix + "_batch";
        Properties props = connectionProperties();

        Map<String, Object> result = new LinkedHashMap<>();
        result.put("driver", "jdbc");
        result.put("channel_binding_property", hasProperty("channelBinding"));
        try (Connection conn = DriverManager.getConnection(url, props)) {
            result.put("driver_version", conn.getMetaData().getDriverVersion());
            result.put("tls", tlsInfo(conn));

            // 1. Simple query (Statement, no parameters).
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT current_user, current_database(), 6 * 7, "
                         + "current_setting('server_version_num')")) {
                rs.next();
                Map<String, Object> simple = new LinkedHashMap<>();
                simple.put("current_user", rs.getString(1));
                simple.put("database", rs.getString(2));
                simple.put("answer", rs.getInt(3));
                simple.put("server_version_num", rs.getString(4));
                result.put("simple", simple);
            }

            // 2. Parameterized query, server-side prepared (prepareThreshold=1).
            Map<String, Object> prepared = new LinkedHashMap<>();
            List<Object> rows = new ArrayList<>();
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT /* pgvalve-prep */ ?::int * 3, upper(?::text)")) {
                for (int i = 0; i < 5; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "prep-" + i);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        rows.add(List.of(rs.getInt(1), rs.getString(2)));
                    }
                }
                prepared.put("use_server_prepare", ps.unwrap(PGStatement.class).isUseServerPrepare());
                List<Object> names = new ArrayList<>();
                try (Statement st = conn.createStatement();
                     ResultSet rs = st.executeQuery("SELECT name FROM pg_prepared_statements "
                             + "WHERE NOT from_sql AND statement LIKE '%' || 'pgvalve' || '-prep%' "
                             + "ORDER BY name")) {
                    while (rs.next()) {
                        names.add(rs.getString(1));
                    }
                }
                prepared.put("rows", rows);
                prepared.put("server_statements", names);
            }
            result.put("prepared", prepared);

            // 3. Transaction with rollback.
            conn.setAutoCommit(false);
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO " + items + " (id, v) VALUES (?, ?)")) {
                for (int id = 1001; id <= 1003; id++) {
                    ps.setInt(1, id);
                    ps.setString(2, "rolled-back");
                    ps.executeUpdate();
                }
            }
            long inTx = count(conn, "SELECT count(*) FROM " + items + " WHERE id BETWEEN 1001 AND 1003");
            conn.rollback();
            conn.setAutoCommit(true);
            long afterRollback = count(conn, "SELECT count(*) FROM " + items
                    + " WHERE id BETWEEN 1001 AND 1003");
            Map<String, Object> rollback = new LinkedHashMap<>();
            rollback.put("in_transaction", inTx);
            rollback.put("after_rollback", afterRollback);
            result.put("rollback", rollback);

            // 4. Unique violation: SQLSTATE as the driver reports it, then the connection is reused.
            Map<String, Object> unique = new LinkedHashMap<>();
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO " + items + " (id, v) VALUES (?, ?)")) {
                ps.setInt(1, 1);
                ps.setString(2, "first");
                ps.executeUpdate();
                ps.setInt(1, 1);
                ps.setString(2, "duplicate");
                try {
                    ps.executeUpdate();
                    throw new IllegalStateException("duplicate insert succeeded");
                } catch (SQLException e) {
                    unique.put("sqlstate", e.getSQLState());
                    if (e instanceof PSQLException) {
                        ServerErrorMessage m = ((PSQLException) e).getServerErrorMessage();
                        if (m != null) {
                            unique.put("constraint", m.getConstraint());
                            unique.put("table", m.getTable());
                        }
                    }
                }
                try (PreparedStatement q = conn.prepareStatement("SELECT ?::int")) {
                    q.setInt(1, 1);
                    try (ResultSet rs = q.executeQuery()) {
                        rs.next();
                        unique.put("after_error", rs.getInt(1));
                    }
                }
                ps.setInt(1, 2);
                ps.setString(2, "after");
                ps.executeUpdate();
            }
            result.put("unique", unique);

            // 5. A 1 MB text value: inserted as a parameter, echoed, and read back.
            String value = bigValue(env("PGV_BIG_UNIT"), Integer.parseInt(env("PGV_BIG_CHARS")));
            Map<String, Object> bigResult = new LinkedHashMap<>();
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO " + big + " (id, body) VALUES (?, ?)")) {
                ps.setInt(1, 1);
                ps.setString(2, value);
                ps.executeUpdate();
            }
            bigResult.put("sent_chars", value.codePointCount(0, value.length()));
            try (PreparedStatement ps = conn.prepareStatement("SELECT ?::text")) {
                ps.setString(1, value);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    bigResult.put("echo_equal", value.equals(rs.getString(1)));
                }
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT body FROM " + big + " WHERE id = ?")) {
                ps.setInt(1, 1);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    String stored = rs.getString(1);
                    bigResult.put("read_chars", stored.codePointCount(0, stored.length()));
                    bigResult.put("read_equal", value.equals(stored));
                    bigResult.put("read_sha256", sha256(stored));
                }
            }
            result.put("big", bigResult);

            // 6. A batch of 100 inserts (addBatch/executeBatch: pipelined Bind/Execute, one Sync).
            Map<String, Object> batchResult = new LinkedHashMap<>();
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO " + batch + " (id, v) VALUES (?, ?)")) {
                for (int i = 1; i <= 100; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "batch-" + i);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                long affected = 0;
                for (int c : counts) {
                    affected += c;
                }
                batchResult.put("statements", counts.length);
                batchResult.put("rows_affected", affected);
            }
            batchResult.put("count", count(conn, "SELECT count(*) FROM " + batch));
            result.put("batch", batchResult);

            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT 'done'")) {
                rs.next();
                result.put("final", rs.getString(1));
            }
        }
        System.out.println(toJson(result));
    }

    static String sha256(String s) throws Exception {
        byte[] d = MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        StringBuilder sb = new StringBuilder();
        for (byte b : d) {
            sb.append(String.format("%02x", b));
        }
        return sb.toString();
    }

    // Just enough JSON for the result: maps, lists, strings, numbers, booleans, null.
    static String toJson(Object o) {
        if (o == null) {
            return "null";
        }
        if (o instanceof String) {
            StringBuilder sb = new StringBuilder("\"");
            for (char c : ((String) o).toCharArray()) {
                if (c == '"' || c == '\\') {
                    sb.append('\\').append(c);
                } else if (c < 0x20) {
                    sb.append(String.format("\\u%04x", (int) c));
                } else {
                    sb.append(c);
                }
            }
            return sb.append('"').toString();
        }
        if (o instanceof Number || o instanceof Boolean) {
            return o.toString();
        }
        if (o instanceof Map) {
            StringBuilder sb = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                if (sb.length() > 1) {
                    sb.append(',');
                }
                sb.append(toJson(String.valueOf(e.getKey()))).append(':').append(toJson(e.getValue()));
            }
            return sb.append('}').toString();
        }
        if (o instanceof List) {
            StringBuilder sb = new StringBuilder("[");
            for (Object x : (List<?>) o) {
                if (sb.length() > 1) {
                    sb.append(',');
                }
                sb.append(toJson(x));
            }
            return sb.append(']').toString();
        }
        throw new IllegalArgumentException("cannot encode " + o.getClass());
    }
}
