// What java.util.Properties.load makes of .properties files: the reference that Strom's
// parser (strom_client::parse_properties) is checked against, by
// integration-tests/tests/properties_java.rs. Run as a single-file source program
// (JDK 11+): `java PropertiesDump.java FILE...`.
//
// The files are read as UTF-8 through a Reader (Properties.load(Reader)): the grammar is
// the same as load(InputStream), which decodes ISO-8859-1 instead; Strom reads UTF-8.
//
// Output, per file: a line `== FILE`, then either `ERROR <exception class>: <message>` or
// one line per entry, sorted: the key, a tab, the value. Both are escaped so every
// character shows: two backslashes for a backslash, a backslash, `u` and four lower-case
// hex digits (UTF-16 code units) for anything outside the printable ASCII range 0x21..0x7e (so spaces, tabs and line breaks
// show as escapes), the rest as itself.

import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.TreeMap;

public class PropertiesDump {
    static String escape(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\') {
                b.append("\\\\");
            } else if (c > 0x20 && c < 0x7f) {
                b.append(c);
            } else {
                b.append(String.format("\\u%04x", (int) c));
            }
        }
        return b.toString();
    }

    public static void main(String[] args) throws Exception {
        StringBuilder out = new StringBuilder();
        for (String path : args) {
            out.append("== ").append(path).append('\n');
            Properties p = new Properties();
            try (Reader r = new InputStreamReader(new FileInputStream(path), StandardCharsets.UTF_8)) {
                p.load(r);
            } catch (IllegalArgumentException e) {
                out.append("ERROR ").append(e.getClass().getName()).append(": ").append(e.getMessage()).append('\n');
                continue;
            }
            TreeMap<String, String> sorted = new TreeMap<>();
            for (String k : p.stringPropertyNames()) {
                sorted.put(k, p.getProperty(k));
            }
            for (var e : sorted.entrySet()) {
                out.append(escape(e.getKey())).append('\t').append(escape(e.getValue())).append('\n');
            }
        }
        System.out.print(out);
    }
}
