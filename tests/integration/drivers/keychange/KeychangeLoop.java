// The prepared-statement loop of tests/integration/test_keychange_drivers.py for pgjdbc
// (docs/architecture.md §4.9, statement refresh): one connection, server-side prepared
// statements (prepareThreshold from PGV_PREPARE_THRESHOLD, binary transfer on, pgjdbc's
// default), run until the file PGV_STOP exists while the table's key changes type:
//
//   INSERT INTO <t> (v) VALUES (?) RETURNING id, SELECT id, v FROM <t> WHERE id = ?,
//   SELECT * FROM <t> WHERE id = ?, UPDATE <t> SET v = ? WHERE id = ?
//
// Every value read is compared with the value written. Prints one JSON line:
// {"iterations", "errors", "first_errors": ["SQLSTATE message", ...], "mismatches", "first_mismatches"}.
// Input: PGV_HOST, PGV_PORT, PGV_USER, PGV_PASSWORD, PGV_DATABASE, PGV_TABLE, PGV_STOP, PGV_TAG
// (the prefix of the values it writes), PGV_PROGRESS (a file it writes its iteration count to).

import java.nio.file.Files;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public class KeychangeLoop {
    static String env(String name) {
        String v = System.getenv(name);
        if (v == null) {
            throw new IllegalStateException("missing environment variable " + name);
        }
        return v;
    }

    static String q(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + env("PGV_HOST") + ":" + env("PGV_PORT") + "/" + env("PGV_DATABASE");
        Properties props = new Properties();
        props.setProperty("user", env("PGV_USER"));
        props.setProperty("password", env("PGV_PASSWORD"));
        props.setProperty("sslmode", "disable");
        props.setProperty("prepareThreshold", env("PGV_PREPARE_THRESHOLD"));
        String t = env("PGV_TABLE");
        String stop = env("PGV_STOP");
        String tag = env("PGV_TAG");
        String progress = env("PGV_PROGRESS");
        long iterations = 0, errors = 0, mismatches = 0;
        List<String> firstErrors = new ArrayList<>();
        List<String> firstMismatches = new ArrayList<>();
        try (Connection c = DriverManager.getConnection(url, props);
             PreparedStatement ins = c.prepareStatement("INSERT INTO " + t + " (v) VALUES (?) RETURNING id");
             PreparedStatement sel = c.prepareStatement("SELECT id, v FROM " + t + " WHERE id = ?");
             PreparedStatement star = c.prepareStatement("SELECT * FROM " + t + " WHERE id = ?");
             PreparedStatement upd = c.prepareStatement("UPDATE " + t + " SET v = ? WHERE id = ?")) {
            while (!Files.exists(Paths.get(stop))) {
                iterations++;
                String v = tag + "-" + iterations;
                try {
                    int id;
                    ins.setString(1, v);
                    try (ResultSet rs = ins.executeQuery()) {
                        rs.next();
                        id = rs.getInt(1);
                    }
                    sel.setInt(1, id);
                    try (ResultSet rs = sel.executeQuery()) {
                        if (!rs.next() || rs.getInt(1) != id || !v.equals(rs.getString(2))) {
                            mismatches++;
                            if (firstMismatches.size() < 5)
                                firstMismatches.add("select " + id + " " + v);
                        }
                    }
                    String v2 = v + "-u";
                    upd.setString(1, v2);
                    upd.setInt(2, id);
                    if (upd.executeUpdate() != 1) {
                        mismatches++;
                        if (firstMismatches.size() < 5)
                            firstMismatches.add("update " + id);
                    }
                    star.setInt(1, id);
                    try (ResultSet rs = star.executeQuery()) {
                        if (!rs.next() || rs.getInt("id") != id || !v2.equals(rs.getString("v"))) {
                            mismatches++;
                            if (firstMismatches.size() < 5)
                                firstMismatches.add("select * " + id + " " + v2);
                        }
                    }
                } catch (SQLException e) {
                    errors++;
                    if (firstErrors.size() < 5)
                        firstErrors.add(e.getSQLState() + " " + e.getMessage());
                }
                Files.write(Paths.get(progress), Long.toString(iterations).getBytes());
                Thread.sleep(5);
            }
        }
        StringBuilder sb = new StringBuilder();
        sb.append("{\"iterations\": ").append(iterations).append(", \"errors\": ").append(errors)
                .append(", \"mismatches\": ").append(mismatches).append(", \"first_errors\": [");
        for (int i = 0; i < firstErrors.size(); i++)
            sb.append(i > 0 ? ", " : "").append(q(firstErrors.get(i)));
        sb.append("], \"first_mismatches\": [");
        for (int i = 0; i < firstMismatches.size(); i++)
            sb.append(i > 0 ? ", " : "").append(q(firstMismatches.get(i)));
        sb.append("]}");
        System.out.println(sb);
    }
}
