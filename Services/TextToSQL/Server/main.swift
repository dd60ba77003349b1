import TextToSQL
import PlatformCore

await PlatformMain.run(TextToSQLService.definition)
