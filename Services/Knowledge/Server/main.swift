import Knowledge
import PlatformCore

await PlatformMain.run(KnowledgeService.definition)
