-- AlterTable
ALTER TABLE "stages" ADD COLUMN     "label" TEXT,
ADD COLUMN     "weight" INTEGER NOT NULL DEFAULT 0;
